"""The closed vocabularies shared by the engine and every channel adapter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChannelName(StrEnum):
    TELEGRAM = "telegram"
    SMS = "sms"
    VOICE = "voice"
    FLASH_CALL = "flash_call"
    INCOMING_CALL = "incoming_call"


class Outcome(StrEnum):
    """What a channel (or the clock) says about one attempt. Closed: adapters map onto it."""

    ACCEPTED = "accepted"  # taken by the provider; a delivery report will follow
    REJECTED_PERMANENT = "rejected_permanent"  # this channel will never reach this number
    REJECTED_TEMPORARY = "rejected_temporary"  # try again later (throttled, network, 5xx)
    DELIVERED = "delivered"  # the subscriber has the code
    NOT_DELIVERED = "not_delivered"  # the provider gave up
    TIMEOUT = "timeout"  # engine-made: no delivery report within the step's time


@dataclass(frozen=True, slots=True)
class ProviderCost:
    """What the provider charged *us* for an attempt (not what the customer pays)."""

    amount_micros: int  # 1e-6 of `currency`
    currency: str = "USD"
    refunded: bool = False  # the provider gave it back (e.g. Telegram: not delivered in ttl)
