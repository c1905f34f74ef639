"""Reading the provider-cost ledger against what customers were charged: the margin report."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.schema import provider_costs, verifications


@dataclass(frozen=True, slots=True)
class MarginRow:
    channel: str
    delivered: int  # verifications delivered by this channel
    revenue_kop: int  # what customers paid for them
    provider_micros: dict[str, int]  # what providers charged, net of refunds, per currency
    refunded_micros: dict[str, int]


async def margins(conn: AsyncConnection) -> list[MarginRow]:
    revenue = {r[0]: (int(r[1]), int(r[2] or 0)) for r in await conn.execute(
        select(verifications.c.delivered_by, func.count(), func.sum(verifications.c.charged))
        .where(verifications.c.delivered_by.is_not(None))
        .group_by(verifications.c.delivered_by))}
    costs: dict[str, dict[str, int]] = {}
    refunds: dict[str, dict[str, int]] = {}
    for channel, kind, currency, amount in await conn.execute(
            select(provider_costs.c.channel, provider_costs.c.kind, provider_costs.c.currency,
                   func.sum(provider_costs.c.amount_micros))
            .group_by(provider_costs.c.channel, provider_costs.c.kind,
                      provider_costs.c.currency)):
        net = costs.setdefault(channel, {})
        net[currency] = net.get(currency, 0) + int(amount)
        if kind == "refund":
            refunds.setdefault(channel, {})[currency] = -int(amount)
    return [MarginRow(c, revenue.get(c, (0, 0))[0], revenue.get(c, (0, 0))[1],
                      costs.get(c, {}), refunds.get(c, {}))
            for c in sorted(set(revenue) | set(costs))]
