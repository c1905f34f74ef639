"""The durable cascade engine: runs verification steps, records outcomes, fires timers.

Work reaches it two ways: the fast path (`run_now`: rows this node created or just moved on,
already leased to it) and the claim loop (due rows whose lease is free: timers, retries, and
work a crashed node left behind once its lease ran out). Channel I/O never happens inside a
transaction: a step is sent, then its outcome is submitted to the group-commit writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from kaskad.channels.base import Channel, Delivery, SendResult
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.clock import Clock, to_ms
from kaskad.engine.bus import StateBus
from kaskad.engine.polling import poll_forever
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.db import Database
from kaskad.storage.verifications import (
    Applied,
    Claim,
    ClaimDue,
    RecordOutcomes,
    Renewal,
    RenewLeases,
    StepOutcome,
    Verification,
    latest_provider_ref,
)

log = structlog.get_logger(__name__)


class Engine:
    def __init__(self, *, batcher: WriteBatcher, channels: Mapping[ChannelName, Channel],
                 claim_op: ClaimDue, record_op: RecordOutcomes, bus: StateBus, clock: Clock,
                 node_id: str, lease_s: float, poll_interval_s: float, claim_batch: int,
                 max_in_flight: int, db: Database | None = None,
                 max_backlog: int | None = None, admit_wait_s: float = 10.0) -> None:
        self.batcher = batcher
        self.channels = dict(channels)
        self.claim_op = claim_op
        self.record_op = record_op
        self.bus = bus
        self.clock = clock
        self.node_id = node_id
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.claim_batch = claim_batch
        self.db = db  # reads for reconciliation
        self._slots = asyncio.Semaphore(max_in_flight)
        # Backpressure: new requests wait (`admit`) while this node has this many steps queued
        # or running, so intake cannot outrun the channels (memory, and CPU the sends need).
        self.max_backlog = max_backlog or 2 * max_in_flight
        self.admit_wait_s = admit_wait_s
        self._room = asyncio.Event()
        self._room.set()
        # Channels bound their own I/O; this is the backstop, well inside the lease. A channel
        # whose sends take longer (a voice call rings, then plays its prompt) says so with
        # `max_send_s`, and its lease is renewed while the step runs.
        self.send_timeout_s = lease_s * 0.8
        self.renew_op = RenewLeases(db) if db is not None else None
        self._sending: dict[asyncio.Task[None], _Running] = {}
        self._overdue: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.steps_run = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, claim_loop: bool = True) -> None:
        if claim_loop and self._loop_task is None:
            self._loop_task = asyncio.create_task(self._claim_loop(), name="engine-claims")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def idle(self) -> None:
        """Wait until no step is running (tests and graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ work

    def run_now(self, rows: Iterable[Verification]) -> None:
        """Run the steps of rows this node has just leased (their lease starts now)."""
        leased_at = self.clock()
        for v in rows:
            task = asyncio.create_task(self._execute(v, leased_at))
            self._tasks.add(task)
            task.add_done_callback(self._finished)
        if len(self._tasks) >= self.max_backlog:
            self._room.clear()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._room.is_set() and len(self._tasks) < self.max_backlog * 0.9:
            self._room.set()

    @property
    def backlog(self) -> int:
        """Steps queued or running on this node."""
        return len(self._tasks)

    async def admit(self) -> None:
        """Wait while this node's backlog is full (at most `admit_wait_s`: the work is durable,
        so past that the request is taken anyway and waits in the queue)."""
        if self._room.is_set():
            return
        try:
            await asyncio.wait_for(self._room.wait(), self.admit_wait_s)
        except TimeoutError:
            pass

    async def _claim_loop(self) -> None:
        await poll_forever(self.claim_once, wake=self._wake, interval_s=self.poll_interval_s,
                           full=self.claim_batch, what="claim")

    async def claim_once(self) -> int:
        self._watchdog()
        room = min(self.claim_batch, self.max_backlog - len(self._tasks))
        if room <= 0:  # busy: due work stays in the table for later, or for another node
            return 0
        now = self.clock()
        rows = await self.batcher.submit(self.claim_op, Claim(
            self.node_id, to_ms(now), to_ms(now + self.lease_s), room))
        self.run_now(rows)
        return len(rows)

    async def _execute(self, v: Verification, leased_at: float) -> None:
        async with self._slots:
            while v is not None:
                held = await self._hold(v, leased_at)
                if held is None:
                    return
                applied = await self._step(v, held)
                if applied is None:
                    return
                if applied.changed and applied.verification is not None:
                    self.bus.publish(applied.verification)
                v = applied.run_now  # type: ignore[assignment]
                leased_at = self.clock()  # the outcome's transition leased it afresh

    async def _hold(self, v: Verification, leased_at: float) -> float | None:
        """When this step's lease began (renewed if half of it went by while the step was
        queued), or None if the lease is no longer ours: a step that waited its lease out may
        have been claimed again (here or by another node) and must not be sent twice."""
        now = self.clock()
        if now - leased_at < self.lease_s / 2 or self.renew_op is None:
            return leased_at
        try:
            ours = await self.batcher.submit(self.renew_op, Renewal(
                v.request_id, v.version, self.node_id, to_ms(now + self.lease_s)))
        except Exception as exc:  # not renewed: leave it to the claim loop after the lease
            log.warning("renewing a queued step's lease failed", request_id=v.request_id,
                        error=repr(exc))
            return None
        if not ours:
            log.info("a queued step's lease ran out; it was claimed again",
                     request_id=v.request_id)
            return None
        return now

    async def _step(self, v: Verification, leased_at: float) -> Applied | None:
        started = self.clock()
        if v.run_step:
            result = await self._send(v, leased_at)
            record = True
        else:  # the report deadline passed without a report
            result = await self._reconcile(v)
            record = False
        self.steps_run += 1
        item = StepOutcome(
            request_id=v.request_id, version=v.version, step_index=v.step_index,
            retries=v.retries, outcome=result.outcome, now_ms=to_ms(self.clock()),
            started_ms=to_ms(started), detail=result.detail, provider_ref=result.provider_ref,
            record_attempt=record, cost=result.cost, part_refs=result.part_refs)
        try:
            return await self.batcher.submit(self.record_op, item)
        except Exception as exc:  # not recorded: the lease runs out and the step is re-run
            log.error("recording an outcome failed", request_id=v.request_id, error=repr(exc))
            return None

    async def _send(self, v: Verification, leased_at: float) -> SendResult:
        channel = self.channels.get(v.channel)
        if channel is None:
            return SendResult(Outcome.REJECTED_PERMANENT, None, f"channel {v.channel} not set up")
        delivery = Delivery(request_id=v.request_id,
                            attempt_key=f"{v.request_id}:{v.step_index}:{v.retries}",
                            account_id=v.account_id, number=v.number, code=v.code,
                            direction=v.direction, text=v.text, sender=v.sender,
                            call_to=v.call_to)
        task = asyncio.current_task()
        assert task is not None
        now = self.clock()
        limit = max(self.send_timeout_s, float(getattr(channel, "max_send_s", 0.0)))
        self._sending[task] = _Running(now + limit, v.request_id, v.version,
                                       leased_at + self.lease_s)
        try:
            return await channel.send(delivery)
        except asyncio.CancelledError:
            if task not in self._overdue:
                raise
            self._overdue.discard(task)
            task.uncancel()
            return SendResult(Outcome.REJECTED_TEMPORARY, None, "channel timed out")
        except Exception as exc:  # an adapter bug must not stall the cascade
            log.exception("channel failed", channel=v.channel.value, request_id=v.request_id)
            return SendResult(Outcome.REJECTED_TEMPORARY, None, f"channel error: {exc!r}")
        finally:
            self._sending.pop(task, None)

    async def _reconcile(self, v: Verification) -> SendResult:
        """Before giving up on a report, ask the provider (if it can be asked): reports get
        lost, and a code already delivered must not be sent again by another channel."""
        timeout = SendResult(Outcome.TIMEOUT, None, "no delivery report in time")
        ask = getattr(self.channels.get(v.channel), "reconcile", None)
        if ask is None or self.db is None:
            return timeout
        try:
            async with self.db.read() as conn:
                ref = await latest_provider_ref(conn, v.request_id, v.step_index)
            if ref is None:
                return timeout
            async with asyncio.timeout(self.send_timeout_s):
                found: SendResult | None = await ask(ref)
        except Exception as exc:  # the provider is down: the timeout stands
            log.warning("reconciliation failed", request_id=v.request_id, error=repr(exc))
            return timeout
        if found is None or found.outcome not in (Outcome.DELIVERED, Outcome.NOT_DELIVERED):
            return SendResult(Outcome.TIMEOUT, ref, timeout.detail,
                              found.cost if found else None)
        return SendResult(found.outcome, ref, found.detail, found.cost)

    def _watchdog(self) -> None:
        """Cancel sends that outlived their time, and renew the leases of those still running
        past half their lease (one sweep per poll instead of a timer each)."""
        now = self.clock()
        renewals = []
        for task, running in list(self._sending.items()):
            if running.deadline < now and task not in self._overdue:
                self._overdue.add(task)
                task.cancel()
            elif running.lease_until - now < self.lease_s / 2:
                running.lease_until = now + self.lease_s
                renewals.append(Renewal(running.request_id, running.version, self.node_id,
                                        to_ms(running.lease_until)))
        if renewals and self.renew_op is not None:
            for renewal in renewals:
                future = self.batcher.enqueue(self.renew_op, renewal)
                future.add_done_callback(_log_lost_lease)


@dataclass(slots=True)
class _Running:
    """A step being sent: when to give up on it, and the lease it holds meanwhile."""

    deadline: float
    request_id: str
    version: int
    lease_until: float


def _log_lost_lease(future: asyncio.Future[bool]) -> None:
    if future.cancelled():
        return
    if future.exception() is not None:
        log.warning("a lease renewal failed", error=repr(future.exception()))
    elif not future.result():
        log.warning("a running step lost its lease (another node may have taken it)")
