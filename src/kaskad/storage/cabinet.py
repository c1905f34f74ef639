"""Read-only queries behind the customer cabinet: history, one request's records, and the
aggregates its charts draw. Every query is scoped by `account_id`: a page can only ever see
its own account's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.schema import ledger, outbox, verifications

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    since_ms: int | None = None
    until_ms: int | None = None  # exclusive
    number: str = ""  # digits; matches anywhere in the number
    channel: str = ""  # delivered_by, or "none" for not (yet) delivered
    state: str = ""
    kind: str = ""  # code | sms | call


def _history_where(account_id: int, f: HistoryFilter) -> list[Any]:
    v = verifications.c
    cond: list[Any] = [v.account_id == account_id]
    if f.since_ms is not None:
        cond.append(v.created_at >= f.since_ms)
    if f.until_ms is not None:
        cond.append(v.created_at < f.until_ms)
    if f.number:
        cond.append(v.number.contains(f.number, autoescape=True))
    if f.channel == "none":
        cond.append(v.delivered_by.is_(None))
    elif f.channel:
        cond.append(v.delivered_by == f.channel)
    if f.state:
        cond.append(v.state == f.state)
    if f.kind:
        cond.append(v.kind == f.kind)
    return cond


async def history(conn: AsyncConnection, account_id: int, f: HistoryFilter, *,
                  limit: int, offset: int) -> list[dict[str, Any]]:
    """Newest first; one row more than `limit` is asked for so the page knows if more follow."""
    v = verifications.c
    rows = await conn.execute(
        select(v.request_id, v.kind, v.number, v.state, v.delivered_by, v.charged,
               v.hold, v.created_at, v.finished_at, v.text,
               v.msg_id)
        .where(*_history_where(account_id, f))
        .order_by(v.created_at.desc(), v.request_id.desc()).limit(limit + 1).offset(offset))
    return [dict(r._mapping) for r in rows]


async def ledger_for(conn: AsyncConnection, account_id: int,
                     request_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(ledger.c.kind, ledger.c.amount, ledger.c.note, ledger.c.created_at)
        .where(ledger.c.account_id == account_id, ledger.c.request_id == request_id)
        .order_by(ledger.c.id))
    return [dict(r._mapping) for r in rows]


async def callbacks_for(conn: AsyncConnection, account_id: int,
                        request_id: str) -> list[dict[str, Any]]:
    o = outbox.c
    rows = await conn.execute(
        select(o.method, o.url, o.body, o.attempts, o.delivered_at, o.last_error, o.created_at,
               o.next_attempt_at)
        .where(o.account_id == account_id, o.request_id == request_id).order_by(o.id))
    return [dict(r._mapping) for r in rows]


def _day(offset_ms: int) -> Any:
    return (verifications.c.created_at + offset_ms) // DAY_MS


async def per_day(conn: AsyncConnection, account_id: int, since_ms: int,
                  offset_ms: int) -> list[tuple[int, str | None, str, int]]:
    """(day number, delivered_by, state, count): the traffic chart and the delivery rate."""
    v = verifications.c
    day = _day(offset_ms)
    rows = await conn.execute(
        select(day, v.delivered_by, v.state, func.count())
        .where(v.account_id == account_id, v.created_at >= since_ms)
        .group_by(day, v.delivered_by, v.state))
    return [(int(r[0]), r[1], r[2], int(r[3])) for r in rows]


async def delivery_times(conn: AsyncConnection, account_id: int, since_ms: int,
                         offset_ms: int, cap: int = 50_000) -> list[tuple[int, int]]:
    """(day number, ms from request to delivery) of delivered requests, the newest `cap`:
    medians are computed in Python (SQLite has no percentile function)."""
    v = verifications.c
    rows = await conn.execute(
        select(_day(offset_ms), v.finished_at - v.created_at)
        .where(v.account_id == account_id, v.created_at >= since_ms,
               v.delivered_by.is_not(None), v.finished_at.is_not(None))
        .order_by(v.created_at.desc()).limit(cap))
    return [(int(r[0]), int(r[1])) for r in rows]


async def delivered_charges(conn: AsyncConnection, account_id: int, since_ms: int,
                            offset_ms: int) -> list[tuple[int, str, int, int, int]]:
    """(day, direction, parts, count, charged sum) of delivered requests: what sending them
    all as SMS would have cost is priced against these."""
    v = verifications.c
    day = _day(offset_ms)
    rows = await conn.execute(
        select(day, v.direction, v.parts, func.count(), func.coalesce(func.sum(v.charged), 0))
        .where(v.account_id == account_id, v.created_at >= since_ms,
               v.delivered_by.is_not(None))
        .group_by(day, v.direction, v.parts))
    return [(int(r[0]), r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]
