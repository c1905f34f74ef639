"""A channel's shared condition (paused by a provider's flood wait, or unhealthy), in the
database so that every node and worker honours it; read through a short cache."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text

from kaskad.domain.clock import Clock, to_ms
from kaskad.storage.db import Database
from kaskad.storage.schema import channel_health


@dataclass(frozen=True, slots=True)
class Health:
    paused_until_ms: int = 0
    healthy: bool = True
    detail: str = ""
    updated_at_ms: int = 0


_UPSERT_PAUSE = text(
    "INSERT INTO channel_health (channel, paused_until, healthy, detail, updated_at) "
    "VALUES (:channel, :until, true, :detail, :now) ON CONFLICT (channel) DO UPDATE SET "
    "paused_until = CASE WHEN excluded.paused_until > channel_health.paused_until "
    "THEN excluded.paused_until ELSE channel_health.paused_until END, "
    "detail = excluded.detail, updated_at = excluded.updated_at")
_UPSERT_HEALTH = text(
    "INSERT INTO channel_health (channel, paused_until, healthy, detail, updated_at) "
    "VALUES (:channel, 0, :healthy, :detail, :now) ON CONFLICT (channel) DO UPDATE SET "
    "healthy = excluded.healthy, detail = excluded.detail, updated_at = excluded.updated_at")


class ChannelHealthStore:
    def __init__(self, db: Database, clock: Clock, cache_s: float = 1.0) -> None:
        self.db = db
        self.clock = clock
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Health]] = {}

    async def get(self, channel: str) -> Health:
        now = self.clock()
        cached = self._cache.get(channel)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.read() as conn:
            row = (await conn.execute(select(channel_health)
                                      .where(channel_health.c.channel == channel))).first()
        health = Health() if row is None else Health(row.paused_until, bool(row.healthy),
                                                     row.detail, row.updated_at)
        self._cache[channel] = (now + self.cache_s, health)
        return health

    async def pause(self, channel: str, seconds: float, detail: str) -> None:
        now = self.clock()
        await self._write(_UPSERT_PAUSE, channel=channel, until=to_ms(now + seconds),
                          detail=detail, now=to_ms(now))

    async def set_healthy(self, channel: str, healthy: bool, detail: str = "") -> None:
        await self._write(_UPSERT_HEALTH, channel=channel, healthy=healthy, detail=detail,
                          now=to_ms(self.clock()))

    async def _write(self, statement: object, **params: object) -> None:
        async with self.db.write() as conn:
            await conn.execute(statement, params)  # type: ignore[call-overload]
        self._cache.pop(str(params["channel"]), None)
