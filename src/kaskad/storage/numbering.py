"""The stored numbering plan: replaced whole by an import, loaded whole for lookups."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.domain.numbering import NumberingPlan, NumberRange
from kaskad.storage.schema import numbering_ranges

CHUNK = 5000


async def replace_plan(conn: AsyncConnection, ranges: Iterable[NumberRange],
                       now_ms: int) -> int:
    """Swap the plan for `ranges` in the caller's transaction (readers see old or new)."""
    plan = NumberingPlan(ranges)  # refuses overlaps before anything is written
    await conn.execute(delete(numbering_ranges))
    rows = [dict(start=r.start, end=r.end, operator=r.operator, operator_name=r.operator_name,
                 region=r.region, inn=r.inn, imported_at=now_ms) for r in plan.ranges]
    for i in range(0, len(rows), CHUNK):
        await conn.execute(insert(numbering_ranges), rows[i:i + CHUNK])
    return len(rows)


async def load_plan(conn: AsyncConnection) -> NumberingPlan:
    rows = await conn.execute(select(numbering_ranges).order_by(numbering_ranges.c.start))
    return NumberingPlan(NumberRange(r.start, r.end, r.operator, r.operator_name, r.region,
                                     r.inn) for r in rows)
