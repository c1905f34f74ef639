"""handle_report: a channel's delivery report, applied to the cascade through the writer."""

from __future__ import annotations

import asyncio

import structlog

from kaskad.domain.channels import ChannelName, Outcome, ProviderCost
from kaskad.domain.clock import Clock, to_ms
from kaskad.engine.bus import StateBus
from kaskad.engine.scheduler import Engine
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.verifications import Applied, ApplyReports, Report

log = structlog.get_logger(__name__)


class ReportHandler:
    """The ReportSink every channel is built with."""

    def __init__(self, *, batcher: WriteBatcher, op: ApplyReports, engine: Engine,
                 bus: StateBus, clock: Clock) -> None:
        self.batcher = batcher
        self.op = op
        self.engine = engine
        self.bus = bus
        self.clock = clock

    async def report(self, channel: ChannelName, provider_ref: str, outcome: Outcome,
                     detail: str = "", cost: ProviderCost | None = None) -> None:
        self.after(await self.batcher.submit(self.op, Report(
            channel, provider_ref, outcome, to_ms(self.clock()), detail, cost)))

    def report_soon(self, channel: ChannelName, provider_ref: str, outcome: Outcome,
                    detail: str = "") -> asyncio.Future[Applied]:
        """The same without a coroutine (and so without a task per report), for callers on
        timers and receive loops; a failed write is logged, like any report the database did
        not take. The future is the write's (an SMPP receipt is acknowledged when it is done)."""
        future = self.batcher.enqueue(self.op, Report(
            channel, provider_ref, outcome, to_ms(self.clock()), detail))
        future.add_done_callback(self._done)
        return future

    def _done(self, future: asyncio.Future[Applied]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("a delivery report was not stored", error=repr(exc))
            return
        self.after(future.result())

    def after(self, applied: Applied) -> None:
        if applied.changed and applied.verification is not None:
            self.bus.publish(applied.verification)
        follow = applied.run_now
        if follow is not None:
            self.engine.run_now([follow])
