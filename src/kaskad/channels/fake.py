"""A scriptable channel that implements the real interface, for tests and experiments.

Like httpx's MockTransport: you give it a function from Delivery to SendResult (sync or async),
it records every delivery, and `report()` lets a test play the provider's later report.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable

from kaskad.channels.base import Delivery, NullSink, ReportSink, SendResult
from kaskad.domain.channels import ChannelName, Outcome

Script = Callable[[Delivery], SendResult | Awaitable[SendResult]]


def accept_all(_: Delivery) -> SendResult:
    return SendResult(Outcome.ACCEPTED)


class FakeChannel:
    def __init__(self, name: ChannelName, script: Script = accept_all,
                 sink: ReportSink | None = None) -> None:
        self.name = name
        self.script = script
        self.sink: ReportSink = sink or NullSink()
        self.sent: list[Delivery] = []
        self._refs = itertools.count(1)

    def next_ref(self) -> str:
        return f"{self.name.value}-{next(self._refs)}"

    async def send(self, delivery: Delivery) -> SendResult:
        self.sent.append(delivery)
        result = self.script(delivery)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def report(self, provider_ref: str, outcome: Outcome, detail: str = "") -> None:
        await self.sink.report(self.name, provider_ref, outcome, detail)

    async def close(self) -> None:
        return None
