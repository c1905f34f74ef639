"""Accounts, API keys, spam list and tariffs: the rarely-written reference data."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.domain.account_settings import (
    AccountSettings,
    dump_settings,
    parse_settings,
    updated,
)
from kaskad.domain.errors import BadRequest, NotEnoughMoney, NotFound
from kaskad.domain.ledger import EntryKind
from kaskad.domain.numbering import direction_candidates
from kaskad.storage.schema import accounts, api_keys, ledger, spam_list, tariffs

_KEY_ALPHABET = string.ascii_letters + string.digits


def hash_key(key: str) -> str:
    """API keys are 190-bit random tokens, so a plain SHA-256 is the right hash (not argon2)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    email: str | None
    disabled: bool
    balance: int
    held: int
    allowed_directions: tuple[str, ...]
    tariff_plan: str
    callback_secret: str
    is_admin: bool = False

    @property
    def available(self) -> int:
        return self.balance - self.held


def _account(row: object) -> Account:
    m = row._mapping  # type: ignore[attr-defined]
    return Account(m["id"], m["name"], m["email"], bool(m["disabled"]), m["balance"], m["held"],
                   split_directions(m["allowed_directions"]), m["tariff_plan"],
                   m["callback_secret"], bool(m["is_admin"]))


def split_directions(text: str) -> tuple[str, ...]:
    return tuple(d for d in (text or "").split(",") if d)


async def create_account(conn: AsyncConnection, *, name: str, email: str | None,
                         balance: int, directions: list[str], plan: str, now_ms: int,
                         password_hash: str | None = None) -> int:
    try:
        result = await conn.execute(insert(accounts).values(
            name=name, email=email, disabled=False, balance=0, held=0,
            password_hash=password_hash,
            allowed_directions=",".join(directions), tariff_plan=plan,
            callback_secret=secrets.token_hex(32), created_at=now_ms,
        ).returning(accounts.c.id))
    except IntegrityError as exc:
        raise BadRequest(f"account {name!r} exists") from exc
    account_id = int(result.scalar_one())
    if balance:
        await topup(conn, account_id, balance, "test balance", now_ms)
    return account_id


async def get_account(conn: AsyncConnection, account_id: int) -> Account:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    if row is None:
        raise NotFound(f"account {account_id}")
    return _account(row)


async def find_account(conn: AsyncConnection, ref: str) -> Account:
    """By id or by name: what the CLI accepts."""
    cond = accounts.c.name == ref
    if ref.isdigit():
        cond = or_(cond, accounts.c.id == int(ref))
    row = (await conn.execute(select(accounts).where(cond))).first()
    if row is None:
        raise NotFound(f"account {ref}")
    return _account(row)


async def list_accounts(conn: AsyncConnection) -> list[Account]:
    rows = await conn.execute(select(accounts).order_by(accounts.c.id))
    return [_account(r) for r in rows]


async def topup(conn: AsyncConnection, account_id: int, amount: int, note: str,
                now_ms: int) -> None:
    """Add (or, negative, take back) money; never below what is available."""
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.balance - accounts.c.held + amount >= 0)
        .values(balance=accounts.c.balance + amount)
    )
    if result.rowcount != 1:
        raise NotEnoughMoney(f"account {account_id}: correction {amount}")
    await conn.execute(insert(ledger).values(account_id=account_id, kind=EntryKind.TOPUP.value,
                                             amount=amount, note=note, created_at=now_ms))


async def set_disabled(conn: AsyncConnection, account_id: int, disabled: bool) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id)
                       .values(disabled=disabled))


async def set_admin(conn: AsyncConnection, account_id: int, is_admin: bool) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id)
                       .values(is_admin=is_admin))


async def set_directions(conn: AsyncConnection, account_id: int, directions: list[str]) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id)
                       .values(allowed_directions=",".join(directions)))


async def set_plan(conn: AsyncConnection, account_id: int, plan: str) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id)
                       .values(tariff_plan=plan))


async def create_api_key(conn: AsyncConnection, account_id: int, name: str,
                         now_ms: int) -> str:
    """Returns the key itself: it is shown once and only its hash is kept."""
    key = new_key()
    await conn.execute(insert(api_keys).values(account_id=account_id, key_hash=hash_key(key),
                                               prefix=key[:6], name=name, created_at=now_ms))
    return key


async def list_api_keys(conn: AsyncConnection, account_id: int) -> list[dict[str, object]]:
    rows = await conn.execute(select(api_keys.c.id, api_keys.c.prefix, api_keys.c.name,
                                     api_keys.c.created_at, api_keys.c.revoked_at)
                              .where(api_keys.c.account_id == account_id)
                              .order_by(api_keys.c.id))
    return [dict(r._mapping) for r in rows]


async def revoke_api_key(conn: AsyncConnection, account_id: int, key_id: int,
                         now_ms: int) -> None:
    result = await conn.execute(update(api_keys)
                                .where(api_keys.c.id == key_id,
                                       api_keys.c.account_id == account_id,
                                       api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=now_ms))
    if result.rowcount != 1:
        raise NotFound(f"key {key_id}")


async def authenticate(conn: AsyncConnection, key_hash: str) -> tuple[int, bool] | None:
    """(account_id, disabled) for a live key, else None."""
    row = (await conn.execute(
        select(accounts.c.id, accounts.c.disabled)
        .select_from(api_keys.join(accounts, api_keys.c.account_id == accounts.c.id))
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    )).first()
    return None if row is None else (int(row[0]), bool(row[1]))


async def add_spam(conn: AsyncConnection, number: str, account_id: int | None,
                   now_ms: int) -> None:
    exists = await conn.execute(select(func.count()).select_from(spam_list).where(
        spam_list.c.number == number,
        spam_list.c.account_id.is_(None) if account_id is None
        else spam_list.c.account_id == account_id))
    if not exists.scalar_one():
        await conn.execute(insert(spam_list).values(number=number, account_id=account_id,
                                                    created_at=now_ms))


async def remove_spam(conn: AsyncConnection, number: str, account_id: int | None) -> None:
    await conn.execute(delete(spam_list).where(
        spam_list.c.number == number,
        spam_list.c.account_id.is_(None) if account_id is None
        else spam_list.c.account_id == account_id))


async def list_spam(conn: AsyncConnection) -> list[tuple[int | None, str]]:
    rows = await conn.execute(select(spam_list.c.account_id, spam_list.c.number)
                              .order_by(spam_list.c.id))
    return [(r[0], r[1]) for r in rows]


async def set_tariff(conn: AsyncConnection, plan: str, channel: str, direction: str,
                     price: int) -> None:
    if price < 0:
        raise BadRequest("a price is never negative")
    cond = and_(tariffs.c.plan == plan, tariffs.c.channel == channel,
                tariffs.c.direction == direction)
    result = await conn.execute(update(tariffs).where(cond).values(price=price))
    if result.rowcount == 0:
        await conn.execute(insert(tariffs).values(plan=plan, channel=channel,
                                                  direction=direction, price=price))


async def list_tariffs(conn: AsyncConnection) -> list[tuple[str, str, str, int]]:
    rows = await conn.execute(select(tariffs.c.plan, tariffs.c.channel, tariffs.c.direction,
                                     tariffs.c.price)
                              .order_by(tariffs.c.plan, tariffs.c.channel, tariffs.c.direction))
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def price_in(table: dict[tuple[str, str, str], int], plan: str, channel: str,
             direction: str) -> int | None:
    """A plan's price for a channel and direction, most specific first: the operator's
    ("RU:mts"), the country's ("RU"), then the plan's catch-all ("*")."""
    for candidate in direction_candidates(direction):
        price = table.get((plan, channel, candidate))
        if price is not None:
            return price
    return None


async def get_settings(conn: AsyncConnection, account_id: int) -> AccountSettings:
    row = (await conn.execute(select(accounts.c.settings)
                              .where(accounts.c.id == account_id))).first()
    if row is None:
        raise NotFound(f"account {account_id}")
    return parse_settings(row[0])


async def change_settings(conn: AsyncConnection, account_id: int,
                          changes: dict[str, Any]) -> AccountSettings:
    new = updated(await get_settings(conn, account_id), changes)
    await conn.execute(update(accounts).where(accounts.c.id == account_id)
                       .values(settings=dump_settings(new)))
    return new


async def set_password_hash(conn: AsyncConnection, account_id: int, password_hash: str) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id)
                       .values(password_hash=password_hash))


async def login_of(conn: AsyncConnection, email: str) -> tuple[int, bool, str | None] | None:
    """(account_id, disabled, password hash) of the account with this email (any case)."""
    row = (await conn.execute(
        select(accounts.c.id, accounts.c.disabled, accounts.c.password_hash)
        .where(func.lower(accounts.c.email) == email.lower()))).first()
    return None if row is None else (int(row[0]), bool(row[1]), row[2])


async def spent(conn: AsyncConnection, account_id: int) -> int:
    """Everything captured from the account so far (kopecks)."""
    total = (await conn.execute(
        select(func.coalesce(func.sum(ledger.c.amount), 0))
        .where(ledger.c.account_id == account_id, ledger.c.kind == "capture"))).scalar()
    return int(total or 0)


async def plan_tariffs(conn: AsyncConnection, plan: str) -> list[tuple[str, str, int]]:
    """(direction, channel, price) of one tariff plan."""
    rows = await conn.execute(
        select(tariffs.c.direction, tariffs.c.channel, tariffs.c.price)
        .where(tariffs.c.plan == plan).order_by(tariffs.c.direction, tariffs.c.channel))
    return [(r[0], r[1], int(r[2])) for r in rows]
