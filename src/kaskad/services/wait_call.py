"""wait_call and incoming calls: verification by the subscriber's call to one of our numbers.

A wait is a verification of kind "call" whose one step (the incoming-call channel) waits
`wait_s` seconds for a report. A call from the subscriber to the pool number they were given is
that report: it confirms the wait once, the hold is captured, and the customer's URL gets a GET
through the callback outbox. The SIP endpoint (or the sandbox's subscriber) calls `on_call`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from kaskad.domain.cascade import Resending, State
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.clock import Clock, to_ms
from kaskad.domain.errors import BadRequest, KaskadError, NumberEmpty, NumberNotValid
from kaskad.domain.numbers import clean_digits, parse_number
from kaskad.engine.scheduler import Engine
from kaskad.services.send_code import new_request_id
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.call_waits import (
    CallRecord,
    RecordCalls,
    active_wait_taken,
    latest_wait,
    pool_numbers_in_use,
)
from kaskad.storage.db import Database
from kaskad.storage.verifications import (
    Applied,
    ApplyReports,
    CreateVerifications,
    NewVerification,
    Report,
    Verification,
)

log = structlog.get_logger(__name__)

MIN_WAIT_S, MAX_WAIT_S = 30, 900  # the providers' SDKs allow 60..300; we are a little wider


class PoolExhausted(KaskadError):
    code = "pool_exhausted"
    text_ru = "Нет свободного номера для звонка"
    text_en = "No pool number is free for this subscriber"


def parse_wait_s(raw: object) -> int:
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
    if not text.isascii() or not text.isdigit() or not MIN_WAIT_S <= int(text) <= MAX_WAIT_S:
        raise BadRequest(f"call_protection must be {MIN_WAIT_S}..{MAX_WAIT_S} seconds")
    return int(text)


@dataclass(frozen=True, slots=True)
class WaitRequest:
    account_id: int
    phone: object
    wait_s: object
    hook_url: str | None


class WaitCall:
    def __init__(self, *, db: Database, batcher: WriteBatcher, create_op: CreateVerifications,
                 engine: Engine, clock: Clock, node_id: str, lease_s: float,
                 pool: Callable[[], Sequence[str]],
                 direction_of: Callable[[str, str], str]) -> None:
        self.db = db
        self.batcher = batcher
        self.create_op = create_op
        self.engine = engine
        self.clock = clock
        self.node_id = node_id
        self.lease_s = lease_s
        self.pool = pool
        self.direction_of = direction_of
        # (subscriber, pool number) chosen here and not yet stored: concurrent requests of
        # one subscriber get different numbers without waiting on each other's commits.
        self._choosing: set[tuple[str, str]] = set()

    async def __call__(self, req: WaitRequest) -> Verification:
        number = parse_number(req.phone)
        wait_s = parse_wait_s(req.wait_s)
        for attempt in range(3):
            call_to = await self.choose_number(number.digits)
            self._choosing.add((number.digits, call_to))
            try:
                return await self._create(req, number.digits, number.direction, call_to,
                                          wait_s)
            except Exception as exc:
                # Another node took the same number for this subscriber at the same moment
                # (the unique index of active waits): choose again.
                if not active_wait_taken(exc) or attempt == 2:
                    raise
            finally:
                self._choosing.discard((number.digits, call_to))
        raise AssertionError("unreachable")

    async def _create(self, req: WaitRequest, digits: str, direction: str, call_to: str,
                      wait_s: int) -> Verification:
        now = self.clock()
        item = NewVerification(
            request_id=new_request_id(now), account_id=req.account_id, number=digits,
            direction=self.direction_of(digits, direction), code="",
            resending=Resending.STOP, callback_url=req.hook_url,
            channels=(ChannelName.INCOMING_CALL,), now_ms=to_ms(now), lease_owner=self.node_id,
            lease_until_ms=to_ms(now + self.lease_s), kind="call", call_to=call_to,
            wait_s=wait_s)
        created = await self.batcher.submit(self.create_op, item)
        self.engine.run_now([created])
        return created

    async def choose_number(self, subscriber: str) -> str:
        """A random pool number this subscriber is not already waited on at: a call then
        names exactly one wait, however many subscribers wait at once (they differ by caller)."""
        pool = list(self.pool())
        async with self.db.read() as conn:
            busy = await pool_numbers_in_use(conn, subscriber, pool)
        free = [n for n in pool if n not in busy and (subscriber, n) not in self._choosing]
        if not free:
            raise PoolExhausted()
        return secrets.choice(free)


def normalize_party(raw: str) -> str | None:
    """A SIP caller or callee as E.164 digits (8XXXXXXXXXX becomes 7XXXXXXXXXX), or None."""
    try:
        return clean_digits(raw)
    except (NumberEmpty, NumberNotValid):
        return None


class IncomingCalls:
    """Matches calls to pool numbers against waits. Dispositions: matched, repeat (the wait is
    already confirmed), late (the window closed), unknown (nobody waits for this caller here),
    not_ours (not a pool number)."""

    def __init__(self, *, db: Database, batcher: WriteBatcher, reports_op: ApplyReports,
                 after: Callable[[Applied], None], clock: Clock,
                 pool: Callable[[], Sequence[str]]) -> None:
        self.db = db
        self.batcher = batcher
        self.reports_op = reports_op
        self.record_op = RecordCalls(db)
        self.after = after  # ReportHandler's follow-up: publish the change, wake the outbox
        self.clock = clock
        self.pool = pool

    async def on_call(self, caller_raw: str, callee_raw: str) -> str:
        caller, callee = normalize_party(caller_raw), normalize_party(callee_raw)
        now_ms = to_ms(self.clock())
        request_id: str | None = None
        if callee is None or callee not in self.pool():
            disposition = "not_ours"
        elif caller is None:
            disposition = "unknown"
        else:
            async with self.db.read() as conn:
                wait = await latest_wait(conn, callee, caller)
            if wait is None:
                disposition = "unknown"
            elif wait.active:
                request_id = wait.request_id
                applied = await self.batcher.submit(self.reports_op, Report(
                    ChannelName.INCOMING_CALL, wait.request_id, Outcome.DELIVERED, now_ms,
                    f"call from {caller}"))
                self.after(applied)
                disposition = "matched" if applied.changed or applied.disposition == "unmatched" \
                    else "repeat"
            else:
                request_id = wait.request_id
                disposition = "repeat" if wait.state is State.CALL else "late"
        future = self.batcher.enqueue(self.record_op, CallRecord(
            caller or caller_raw, callee or callee_raw, request_id, disposition, now_ms))
        future.add_done_callback(_log_unrecorded)
        log.debug("incoming call", caller=caller, callee=callee, disposition=disposition)
        return disposition


def _log_unrecorded(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("an incoming call was not recorded", error=repr(future.exception()))
