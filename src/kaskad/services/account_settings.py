"""Account settings as the hot paths read them: cached for a short time per node, so a send
does not cost a settings query (a change made in the cabinet applies within `ttl_s`; see
services.ttl_cache)."""

from __future__ import annotations

from kaskad.domain.account_settings import AccountSettings
from kaskad.domain.clock import Clock
from kaskad.services.ttl_cache import TtlCache
from kaskad.storage.accounts import get_settings
from kaskad.storage.db import Database


class SettingsCache:
    def __init__(self, db: Database, clock: Clock, ttl_s: float) -> None:
        self.db = db
        self._cache: TtlCache[int, AccountSettings] = TtlCache(self._load, clock, ttl_s)

    async def get(self, account_id: int) -> AccountSettings:
        return await self._cache.get(account_id)

    async def _load(self, account_id: int) -> AccountSettings:
        async with self.db.read() as conn:
            return await get_settings(conn, account_id)

    def invalidate(self, account_id: int | None = None) -> None:
        self._cache.invalidate(account_id)
