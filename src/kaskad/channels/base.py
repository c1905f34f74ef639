"""The one small async interface every delivery channel implements.

A channel sends one attempt and says what happened in the closed `Outcome` vocabulary; if the
provider reports later, the channel passes the report to the `ReportSink` it was built with.
Channels classify failures (permanent / temporary) but never decide the fallback: the cascade's
`next_step()` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kaskad.domain.channels import ChannelName, Outcome, ProviderCost

__all__ = ["Channel", "Delivery", "NullSink", "ProviderCost", "ReportSink", "SendResult"]


@dataclass(slots=True)
class Delivery:
    """One attempt to get a code to a subscriber."""

    request_id: str
    attempt_key: str  # unique per attempt; providers that dedupe get it as an idempotency key
    account_id: int
    number: str  # E.164 digits without "+"
    code: str
    lang: str = "ru"
    direction: str = ""  # "RU", or "RU:mts" when the numbering plan knows the operator
    text: str | None = None  # an SMS's own text (push_msg); None: the code's template
    sender: str | None = None  # the account's approved sender name; None: the default
    call_to: str | None = None  # an incoming-call wait's pool number


@dataclass(slots=True)
class SendResult:
    outcome: Outcome
    provider_ref: str | None = None  # the provider's id, for matching later reports
    detail: str = ""  # the provider's own words (error string, status), for the history
    cost: ProviderCost | None = None
    # A message sent in parts (a long SMS): every part's reference, the first one first. Each
    # part gets its own report; the attempt's outcome is decided from all of them.
    part_refs: tuple[str, ...] = ()


class ReportSink(Protocol):
    async def report(self, channel: ChannelName, provider_ref: str, outcome: Outcome,
                     detail: str = "", cost: ProviderCost | None = None) -> None: ...


class Channel(Protocol):
    name: ChannelName

    async def send(self, delivery: Delivery) -> SendResult: ...

    async def close(self) -> None: ...


class NullSink:
    """A sink that drops reports; for channels used without an engine."""

    async def report(self, channel: ChannelName, provider_ref: str, outcome: Outcome,
                     detail: str = "", cost: ProviderCost | None = None) -> None:
        return None
