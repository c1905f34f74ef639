"""The callback outbox: rows written in the same transaction as the state they report, then
claimed, sent and marked by the engine's sender. At-least-once, each with a stable event id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.batch import BatchOp
from kaskad.storage.db import Database
from kaskad.storage.schema import accounts, outbox


@dataclass(frozen=True, slots=True)
class OutboxClaim:
    now_ms: int
    lease_until_ms: int
    limit: int


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    event_id: str
    account_id: int
    method: str
    url: str
    body: str
    attempts: int
    secret: str


@dataclass(frozen=True, slots=True)
class OutboxResult:
    id: int
    delivered: bool
    now_ms: int
    next_attempt_ms: int | None  # None with delivered=False: given up
    error: str = ""


class ClaimOutbox(BatchOp[OutboxClaim, list[OutboxEntry]]):
    name = "claim_outbox"

    def __init__(self, db: Database) -> None:
        lock = "" if db.is_sqlite else " FOR UPDATE SKIP LOCKED"
        free = ("next_attempt_at IS NOT NULL AND next_attempt_at <= :now "
                "AND (lease_until IS NULL OR lease_until < :now)")
        self._sql = text(
            f"UPDATE outbox SET lease_until = :until WHERE {free} AND id IN ("
            f"SELECT id FROM outbox WHERE {free} ORDER BY next_attempt_at LIMIT :limit{lock}) "
            f"RETURNING id, event_id, account_id, method, url, body, attempts")

    async def run(self, conn: AsyncConnection,
                  items: Sequence[OutboxClaim]) -> list[list[OutboxEntry] | Exception]:
        out: list[list[OutboxEntry] | Exception] = []
        for c in items:
            rows = list(await conn.execute(self._sql, {"now": c.now_ms, "until": c.lease_until_ms,
                                                       "limit": c.limit}))
            secrets = await _secrets(conn, {r._mapping["account_id"] for r in rows})
            out.append([OutboxEntry(**r._mapping, secret=secrets.get(r._mapping["account_id"], ""))
                        for r in rows])
        return out


async def _secrets(conn: AsyncConnection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await conn.execute(select(accounts.c.id, accounts.c.callback_secret)
                              .where(accounts.c.id.in_(sorted(ids))))
    return {r[0]: r[1] for r in rows}


class FinishOutbox(BatchOp[OutboxResult, None]):
    name = "finish_outbox"

    async def run(self, conn: AsyncConnection,
                  items: Sequence[OutboxResult]) -> list[Exception | None]:
        params: list[dict[str, Any]] = []
        for r in items:
            params.append(dict(
                b_id=r.id, next_attempt_at=None if r.delivered else r.next_attempt_ms,
                delivered_at=r.now_ms if r.delivered else None, last_error=r.error[:500]))
        await conn.execute(
            update(outbox).where(outbox.c.id == bindparam("b_id"))
            .values(attempts=outbox.c.attempts + 1, lease_until=None,
                    next_attempt_at=bindparam("next_attempt_at"),
                    delivered_at=bindparam("delivered_at"), last_error=bindparam("last_error")),
            params)
        return [None] * len(items)


async def list_for_request(conn: AsyncConnection, request_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(outbox).where(outbox.c.request_id == request_id)
                              .order_by(outbox.c.id))
    return [dict(r._mapping) for r in rows]
