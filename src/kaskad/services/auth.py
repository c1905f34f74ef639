"""API-key authentication with a short-lived cache (keys are checked on every request)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from kaskad.domain.clock import Clock
from kaskad.domain.errors import AccountDisabled, AuthFailed
from kaskad.services.ttl_cache import TtlCache
from kaskad.storage import accounts as repo
from kaskad.storage.db import Database


class Authenticator:
    def __init__(self, db: Database, clock: Clock, ttl_s: float) -> None:
        self.db = db
        self._cache: TtlCache[str, tuple[int, bool] | None] = TtlCache(
            self._load, clock, ttl_s)
        self._hashes: dict[str, str] = {}  # key -> SHA-256, saves hashing on every request

    async def account_for(self, key: object) -> int:
        """The account id of a live key of an enabled account, else AuthFailed/AccountDisabled."""
        if not isinstance(key, str) or not key.strip() or len(key) > 200:
            raise AuthFailed()
        key = key.strip()
        key_hash = self._hashes.get(key)
        if key_hash is None:
            if len(self._hashes) > 10_000:
                self._hashes.clear()
            key_hash = self._hashes[key] = repo.hash_key(key)
        found = await self._cache.get(key_hash)
        if found is None:
            raise AuthFailed()
        account_id, disabled = found
        if disabled:
            raise AccountDisabled()
        return account_id

    async def _load(self, key_hash: str) -> tuple[int, bool] | None:
        async with self.db.read() as conn:
            return await repo.authenticate(conn, key_hash)

    def invalidate(self) -> None:
        self._cache.invalidate()


class PasswordAuth:
    """email + password on every call (the ssms API's second mode). argon2 costs tens of ms
    of CPU, so a verified pair is remembered for `ttl_s` under a keyed digest (never the
    password itself); a wrong pair is checked afresh each time."""

    def __init__(self, db: Database, clock: Clock, ttl_s: float) -> None:
        self.db = db
        self.clock = clock
        self.ttl_s = max(ttl_s, 30.0)
        self._hasher = PasswordHasher()
        self._pepper = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[float, int]] = {}

    async def account_for(self, email: object, password: object) -> int:
        if not isinstance(email, str) or not isinstance(password, str) or not email.strip() \
                or not password or len(email) > 254 or len(password) > 200:
            raise AuthFailed()
        digest = hmac.new(self._pepper, f"{email.strip().lower()}\0{password}".encode(),
                          hashlib.sha256).digest()
        now = self.clock()
        hit = self._verified.get(digest)
        async with self.db.read() as conn:
            found = await repo.login_of(conn, email.strip())
        if found is None:
            raise AuthFailed()
        account_id, disabled, stored = found
        if stored is None:  # no password set: this account logs in with keys only
            raise AuthFailed()
        if hit is None or hit[0] <= now or hit[1] != account_id:
            if not await asyncio.to_thread(self._check, stored, password):
                raise AuthFailed()
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = (now + self.ttl_s, account_id)
        if disabled:
            raise AccountDisabled()
        return account_id

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerifyMismatchError, InvalidHashError):
            return False

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)
