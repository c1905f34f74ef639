"""Account settings as the hot paths read them: cached for a short time per node, so a send
does not cost a settings query (a change made in the cabinet applies within `ttl_s`)."""

from __future__ import annotations

from kaskad.domain.account_settings import AccountSettings
from kaskad.domain.clock import Clock
from kaskad.storage.accounts import get_settings
from kaskad.storage.db import Database


class SettingsCache:
    def __init__(self, db: Database, clock: Clock, ttl_s: float) -> None:
        self.db = db
        self.clock = clock
        self.ttl_s = ttl_s
        self._cache: dict[int, tuple[float, AccountSettings]] = {}

    async def get(self, account_id: int) -> AccountSettings:
        now = self.clock()
        hit = self._cache.get(account_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        async with self.db.read() as conn:
            found = await get_settings(conn, account_id)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[account_id] = (now + self.ttl_s, found)
        return found

    def invalidate(self, account_id: int | None = None) -> None:
        if account_id is None:
            self._cache.clear()
        else:
            self._cache.pop(account_id, None)
