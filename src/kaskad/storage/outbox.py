"""The callback outbox: rows written in the same transaction as the state they report, then
sent and marked by the engine's sender. At-least-once, each with a stable event id.

A row reaches the sender one of two ways. The node that wrote it hands it over as soon as
its transaction commits, leased to that node from the start (engine.callbacks); or, when that
node's sender is full, gone or restarted, a claim takes it once due and its lease is over."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.batch import BatchConn, BatchOp
from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql
from kaskad.storage.schema import accounts, outbox


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    now_ms: int
    lease_until_ms: int
    limit: int


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    event_id: str
    account_id: int
    method: str
    url: str
    body: str
    attempts: int
    secret: str | None  # the account's signing secret; None: the sender looks it up


class OutboxHandoff(Protocol):
    """This node's sender of callbacks (engine.callbacks.CallbackSender), as the writer sees
    it when it inserts outbox rows."""

    @property
    def lease_s(self) -> float: ...

    def room(self) -> int: ...

    def deliver_now(self, entries: Sequence[OutboxEntry]) -> None: ...

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OutboxResult:
    event_id: str
    delivered: bool
    now_ms: int
    next_attempt_ms: int | None  # None with delivered=False: given up
    error: str = ""


class ClaimOutbox(BatchOp[OutboxClaim, list[OutboxEntry]]):
    name = "claim_outbox"
    order = 60

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)
        self._template = self.sql.claim_due(
            "outbox", "id", "next_attempt_at", "lease_until = ?",
            "event_id, account_id, method, url, body, attempts, "
            # the signing secret with the claim (one round trip, not two)
            "(SELECT callback_secret FROM accounts WHERE accounts.id = outbox.account_id)")

    async def run(self, conn: BatchConn,
                  items: Sequence[OutboxClaim]) -> list[list[OutboxEntry] | Exception]:
        out: list[list[OutboxEntry] | Exception] = []
        for c in items:
            rows = await self.sql.fetch(conn, self._template, c.lease_until_ms, c.now_ms,
                                        c.now_ms, c.now_ms, c.now_ms, c.limit)
            out.append([OutboxEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or "")
                        for r in rows])
        return out


class FinishOutbox(BatchOp[OutboxResult, None]):
    name = "finish_outbox"
    order = 70

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)

    async def run(self, conn: BatchConn,
                  items: Sequence[OutboxResult]) -> list[Exception | None]:
        await self.sql.update_rows(
            conn, "outbox", "event_id", ("next_attempt_at", "delivered_at", "last_error"),
            [(None if r.delivered else r.next_attempt_ms, r.now_ms if r.delivered else None,
              r.error[:500], r.event_id) for r in items],
            fixed="attempts = attempts + 1, lease_until = NULL")
        return [None] * len(items)


async def callback_secret(conn: AsyncConnection, account_id: int) -> str:
    """The account's secret that signs its callbacks ("" for an account that is gone)."""
    found = (await conn.execute(select(accounts.c.callback_secret).where(
        accounts.c.id == account_id))).scalar()
    return str(found or "")


async def list_for_request(conn: AsyncConnection, request_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(outbox).where(outbox.c.request_id == request_id)
                              .order_by(outbox.c.id))
    return [dict(r._mapping) for r in rows]
