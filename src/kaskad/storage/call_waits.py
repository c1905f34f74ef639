"""Incoming-call waits (verifications of kind "call") as the SIP endpoint and wait_call read
them, and the record of every call that reached a pool number."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.domain.cascade import FINAL_STATES, State
from kaskad.storage.batch import BatchConn, BatchOp
from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql
from kaskad.storage.schema import verifications


@dataclass(frozen=True, slots=True)
class Wait:
    request_id: str
    state: State
    active: bool  # still waiting: not final and not past its window


def active_wait_taken(exc: BaseException) -> bool:
    """Whether a write failed on the unique index of active waits (ux_verifications_active_waits):
    the subscriber already waits at that pool number."""
    text_of = str(exc)
    return ("ux_verifications_active_waits" in text_of  # PostgreSQL names the index
            or "verifications.call_to, verifications.number" in text_of)  # SQLite, its columns


async def pool_numbers_in_use(conn: AsyncConnection, number: str,
                              pool: Sequence[str]) -> set[str]:
    """Pool numbers this subscriber is already asked to call (to give them another)."""
    v = verifications.c
    rows = await conn.execute(select(v.call_to).where(
        v.kind == "call", v.call_to.in_(list(pool)), v.number == number,
        v.next_run_at.is_not(None)))
    return {r[0] for r in rows}


async def latest_wait(conn: AsyncConnection, call_to: str, caller: str) -> Wait | None:
    """The newest wait for a call from `caller` to `call_to`, active or not."""
    row = (await conn.execute(text(
        "SELECT request_id, state, next_run_at FROM verifications "
        "WHERE kind = 'call' AND call_to = :to AND number = :n "
        "ORDER BY created_at DESC LIMIT 1"), {"to": call_to, "n": caller})).first()
    if row is None:
        return None
    state = State(row[1])
    return Wait(row[0], state, row[2] is not None and state not in FINAL_STATES)


@dataclass(frozen=True, slots=True)
class CallRecord:
    caller: str
    callee: str
    request_id: str | None
    disposition: str
    received_at: int


class RecordCalls(BatchOp[CallRecord, None]):
    """Every call to a pool number, through the group-commit writer (a call is answered
    without waiting for its own row: the wait it confirmed is already stored)."""

    name = "record_calls"
    order = 85

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)

    async def run(self, conn: BatchConn, items: Sequence[CallRecord]) -> list[Exception | None]:
        await self.sql.insert_rows(
            conn, "incoming_calls", ("caller", "callee", "request_id", "disposition",
                                     "received_at"),
            [(i.caller[:32], i.callee[:32], i.request_id, i.disposition, i.received_at)
             for i in items])
        return [None] * len(items)
