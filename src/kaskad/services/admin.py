"""Operator use cases shared by the CLI (and, later, the admin pages)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher

from kaskad.domain.account_settings import AccountSettings
from kaskad.domain.clock import Clock, system_clock, to_ms
from kaskad.domain.errors import BadRequest
from kaskad.domain.numbering import NumberRange, normalize_direction, parse_registry
from kaskad.domain.numbers import parse_number
from kaskad.storage import accounts as repo
from kaskad.storage.costs import MarginRow, margins
from kaskad.storage.db import Database
from kaskad.storage.mo import NewMo, recent_mo
from kaskad.storage.numbering import load_plan, replace_plan

DEMO_TARIFFS = {  # kopecks, Russia: Telegram is well under half the price of an SMS (seed 000)
    "telegram": 150,
    "sms": 350,
    "voice": 450,
    "flash_call": 100,
    "incoming_call": 50,
}


@dataclass(frozen=True, slots=True)
class NewAccount:
    account: repo.Account
    api_key: str


class Admin:
    def __init__(self, db: Database, *, test_balance_kop: int, default_directions: list[str],
                 clock: Clock = system_clock) -> None:
        self.db = db
        self.test_balance_kop = test_balance_kop
        self.default_directions = default_directions
        self.clock = clock

    def _now(self) -> int:
        return to_ms(self.clock())

    async def create_account(self, name: str, *, email: str | None = None,
                             balance_kop: int | None = None, directions: list[str] | None = None,
                             plan: str = "default", password_hash: str | None = None
                             ) -> NewAccount:
        """One transaction: the account, its test balance, its first key (and, from the
        cabinet's registration, its password), so a failure leaves nothing half-made."""
        async with self.db.write() as conn:
            account_id = await repo.create_account(
                conn, name=name, email=email,
                balance=self.test_balance_kop if balance_kop is None else balance_kop,
                directions=directions or self.default_directions, plan=plan,
                now_ms=self._now(), password_hash=password_hash)
            key = await repo.create_api_key(conn, account_id, "default", self._now())
            account = await repo.get_account(conn, account_id)
        return NewAccount(account, key)

    async def account(self, ref: str) -> repo.Account:
        async with self.db.read() as conn:
            return await repo.find_account(conn, ref)

    async def accounts(self) -> list[repo.Account]:
        async with self.db.read() as conn:
            return await repo.list_accounts(conn)

    async def new_key(self, ref: str, name: str = "") -> str:
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            return await repo.create_api_key(conn, account.id, name, self._now())

    async def keys(self, ref: str) -> list[dict[str, object]]:
        async with self.db.read() as conn:
            account = await repo.find_account(conn, ref)
            return await repo.list_api_keys(conn, account.id)

    async def revoke_key(self, ref: str, key_id: int) -> None:
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            await repo.revoke_api_key(conn, account.id, key_id, self._now())

    async def topup(self, ref: str, amount_kop: int, note: str = "top-up") -> repo.Account:
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            await repo.topup(conn, account.id, amount_kop, note, self._now())
            return await repo.get_account(conn, account.id)

    async def set_password(self, ref: str, password: str) -> None:
        """For the ssms API's email + password mode (and the cabinet's login)."""
        if len(password) < 8:
            raise BadRequest("a password has at least 8 characters")
        hashed = await asyncio.to_thread(PasswordHasher().hash, password)
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            if not account.email:
                raise BadRequest("the account has no email to log in with")
            await repo.set_password_hash(conn, account.id, hashed)

    async def set_disabled(self, ref: str, disabled: bool) -> None:
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            await repo.set_disabled(conn, account.id, disabled)

    async def set_admin(self, ref: str, is_admin: bool) -> None:
        """Who may open the operator's /admin pages (they log in through the cabinet)."""
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            await repo.set_admin(conn, account.id, is_admin)

    async def set_directions(self, ref: str, directions: list[str]) -> None:
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            await repo.set_directions(conn, account.id,
                                      [normalize_direction(d) for d in directions])

    async def set_plan(self, ref: str, plan: str) -> None:
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            await repo.set_plan(conn, account.id, plan)

    async def spam_add(self, number: str, account_ref: str | None = None) -> str:
        digits = parse_number(number).digits
        async with self.db.write() as conn:
            account_id = (await repo.find_account(conn, account_ref)).id if account_ref else None
            await repo.add_spam(conn, digits, account_id, self._now())
        return digits

    async def spam_remove(self, number: str, account_ref: str | None = None) -> None:
        digits = parse_number(number).digits
        async with self.db.write() as conn:
            account_id = (await repo.find_account(conn, account_ref)).id if account_ref else None
            await repo.remove_spam(conn, digits, account_id)

    async def spam(self) -> list[tuple[int | None, str]]:
        async with self.db.read() as conn:
            return await repo.list_spam(conn)

    async def set_tariff(self, plan: str, channel: str, direction: str, price_kop: int) -> None:
        async with self.db.write() as conn:
            await repo.set_tariff(conn, plan, channel, normalize_direction(direction),
                                 price_kop)

    async def tariffs(self) -> list[tuple[str, str, str, int]]:
        async with self.db.read() as conn:
            return await repo.list_tariffs(conn)

    async def ensure_demo_tariffs(self, direction: str = "RU") -> None:
        """Give the default plan a price for every channel it has none for (in `direction`),
        so the demo can bill every flow; prices already set are kept."""
        have = {(channel, d) for plan, channel, d, _ in await self.tariffs()
                if plan == "default"}
        for channel, price in DEMO_TARIFFS.items():
            if (channel, direction) not in have:
                await self.set_tariff("default", channel, direction, price)

    async def settings(self, ref: str, changes: dict[str, str] | None = None) -> AccountSettings:
        """An account's settings, after applying `changes` (a value of "" clears one)."""
        async with self.db.write() as conn:
            account = await repo.find_account(conn, ref)
            if changes:
                return await repo.change_settings(conn, account.id, dict(changes))
            return await repo.get_settings(conn, account.id)

    async def margins(self) -> list[MarginRow]:
        """Per channel: what customers paid us and what providers charged us (net of refunds)."""
        async with self.db.read() as conn:
            return await margins(conn)

    async def import_numbering(self, text: str) -> int:
        """Replace the numbering plan with a DEF/ABC registry file's ranges."""
        ranges = list(parse_registry(text))
        async with self.db.write() as conn:
            return await replace_plan(conn, ranges, self._now())

    async def lookup_number(self, number: str) -> NumberRange | None:
        digits = parse_number(number).digits
        async with self.db.read() as conn:
            return (await load_plan(conn)).lookup(digits)

    async def recent_mo(self, limit: int = 50) -> list[NewMo]:
        async with self.db.read() as conn:
            return await recent_mo(conn, limit)
