"""The one place that builds everything. Nothing connects at import time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from kaskad.channels.base import Channel, ReportSink
from kaskad.channels.sandbox import sandbox_channels
from kaskad.config import Settings
from kaskad.domain.callbacks import final_callback_body, new_event_id
from kaskad.domain.clock import Clock, system_clock
from kaskad.engine.bus import Predicate, StateBus
from kaskad.engine.callbacks import CallbackSender
from kaskad.engine.scheduler import Engine
from kaskad.metrics import Metrics
from kaskad.services.auth import Authenticator
from kaskad.services.reports import ReportHandler
from kaskad.services.send_code import SendCode
from kaskad.simulators.world import World
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.db import Database
from kaskad.storage.outbox import ClaimOutbox, FinishOutbox
from kaskad.storage.verifications import (
    ApplyReports,
    ClaimDue,
    CreateVerifications,
    RecordOutcomes,
    Transitions,
    Verification,
    get_verification,
)

log = structlog.get_logger(__name__)

ChannelFactory = Callable[[ReportSink], Sequence[Channel]]


class Gateway:
    """Every long-lived part of a running kaskad, wired together."""

    def __init__(self, settings: Settings, *, clock: Clock = system_clock,
                 channels: ChannelFactory | None = None, db: Database | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.db = db or Database(settings.effective_database_url)
        self.batcher = WriteBatcher(self.db, max_batch=settings.write_batch)
        self.bus = StateBus()
        self.transitions = Transitions(
            self.db, settings.timeouts, (settings.max_temporary_retries, settings.retry_backoff_s),
            self._callback_for, settings.node_id, settings.lease_s)
        self.create_op = CreateVerifications(self.db)
        self.record_op = RecordOutcomes(self.transitions)
        self.reports_op = ApplyReports(self.transitions)
        self.engine = Engine(
            batcher=self.batcher, channels={}, claim_op=ClaimDue(self.db),
            record_op=self.record_op, bus=self.bus, clock=clock, node_id=settings.node_id,
            lease_s=settings.lease_s, poll_interval_s=settings.poll_interval_s,
            claim_batch=settings.claim_batch, max_in_flight=settings.max_in_flight)
        self.reports = ReportHandler(batcher=self.batcher, op=self.reports_op,
                                     engine=self.engine, bus=self.bus, clock=clock)
        factory = channels or self._sandbox
        self.channels = list(factory(self.reports))
        self.engine.channels = {c.name: c for c in self.channels}
        self.auth = Authenticator(self.db, clock, settings.auth_cache_ttl_s)
        self.send_code = SendCode(
            auth=self.auth, batcher=self.batcher, create_op=self.create_op, engine=self.engine,
            bus=self.bus, clock=clock, node_id=settings.node_id, lease_s=settings.lease_s,
            wait_s=settings.send_wait_s)
        self.callbacks = CallbackSender(
            batcher=self.batcher, claim_op=ClaimOutbox(self.db), finish_op=FinishOutbox(self.db),
            clock=clock, timeout_s=settings.callback_timeout_s,
            max_attempts=settings.callback_max_attempts,
            backoff_base_s=settings.callback_backoff_s,
            backoff_cap_s=settings.callback_backoff_cap_s,
            concurrency=settings.callback_concurrency,
            allow_private=settings.callback_allow_private,
            poll_interval_s=settings.poll_interval_s)
        self.bus.listen(self._on_change)
        self.started = False

    def _sandbox(self, sink: ReportSink) -> Sequence[Channel]:
        sb = self.settings.sandbox
        return sandbox_channels(World(sb.rules), sink, sb.report_delay_s, sb.slow_delay_s)

    def _callback_for(self, v: Verification) -> tuple[str, str, str] | None:
        if not v.callback_url or v.finished_at is None:
            return None
        body = final_callback_body(request_id=v.request_id, number=v.number, code=v.code,
                                   state=v.state.value, price_kop=v.charged,
                                   finished_ms=v.finished_at, tz=self.settings.timezone)
        return v.callback_url, body.decode(), new_event_id()

    def _on_change(self, v: Verification) -> None:
        self.metrics.state_changes.inc(v.state)
        if v.final and v.callback_url:
            self.callbacks.wake()

    async def start(self, *, engine: bool = True, callbacks: bool = True) -> None:
        self.batcher.start()
        self.engine.start(claim_loop=engine)
        if callbacks:
            self.callbacks.start()
        self.started = True

    async def stop(self) -> None:
        await self.callbacks.stop()
        await self.engine.stop()
        for channel in self.channels:
            await channel.close()
        await self.bus.close()
        await self.batcher.stop()
        await self.db.dispose()
        self.started = False

    async def await_state(self, request_id: str, predicate: Predicate,
                          timeout_s: float) -> Verification | None:
        """The verification once `predicate` holds for it (changes made by this node), or the
        stored row when `timeout_s` passes first."""
        waiter = self.bus.waiter(request_id, predicate)
        try:
            async with self.db.read() as conn:
                current = await get_verification(conn, request_id)
            if current is not None and predicate(current):
                return current
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            async with self.db.read() as conn:
                return await get_verification(conn, request_id)
        finally:
            self.bus.forget(request_id, waiter)

    def refresh_gauges(self) -> None:
        self.metrics.write_batches.set(self.batcher.batches)
        self.metrics.write_items.set(self.batcher.items)
        self.metrics.steps_run.set(self.engine.steps_run)
