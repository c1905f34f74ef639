"""handle_report: a channel's delivery report, applied to the cascade through the writer."""

from __future__ import annotations

from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.clock import Clock, to_ms
from kaskad.engine.bus import StateBus
from kaskad.engine.scheduler import Engine
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.verifications import ApplyReports, Report


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
                     detail: str = "") -> None:
        applied = await self.batcher.submit(self.op, Report(
            channel, provider_ref, outcome, to_ms(self.clock()), detail))
        if applied.changed and applied.verification is not None:
            self.bus.publish(applied.verification)
        follow = applied.run_now
        if follow is not None:
            self.engine.run_now([follow])
