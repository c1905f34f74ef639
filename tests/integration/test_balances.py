"""storage.balances: money moves as a batch's last statement, re-checked under the row lock."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from kaskad.domain.errors import NotEnoughMoney
from kaskad.storage import balances
from kaskad.storage.batch import BatchConn, BatchOp, WriteBatcher
from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql


async def _account(db: Database, account_id: int, balance: int, held: int = 0) -> None:
    async with db.write() as conn:
        await conn.execute(text(
            "INSERT INTO accounts (id, name, balance, held, callback_secret, created_at) "
            "VALUES (:id, :name, :balance, :held, 's', 1)"),
            dict(id=account_id, name=f"a{account_id}", balance=balance, held=held))


async def _money(db: Database, account_id: int) -> tuple[int, int]:
    async with db.read() as conn:
        row = (await conn.execute(text("SELECT balance, held FROM accounts WHERE id = :id"),
                                  dict(id=account_id))).one()
    return int(row[0]), int(row[1])


async def test_apply_moves_several_accounts_or_none(db_url: str) -> None:
    db = Database(db_url)
    sql = RawSql(db)
    try:
        await _account(db, 1, 1000)
        await _account(db, 2, 500, held=400)
        changes = balances.BalanceChanges()
        changes.add(2, held=100)  # exactly the available 100
        changes.add(1, balance=-300, held=-0)
        changes.add(1, held=200)
        async with db.batch() as conn:
            await balances.apply(sql, conn, changes)
        assert await _money(db, 1) == (700, 200)
        assert await _money(db, 2) == (500, 500)

        too_much = balances.BalanceChanges()
        too_much.add(1, held=100)
        too_much.add(2, held=1)  # nothing left on account 2
        with pytest.raises(balances.BalanceMoved):
            async with db.batch() as conn:
                await balances.apply(sql, conn, too_much)
        assert await _money(db, 1) == (700, 200)  # rolled back with the batch
        assert await _money(db, 2) == (500, 500)
    finally:
        await db.dispose()


class _HoldIfAvailable(BatchOp[int, int]):
    """Decides on an unlocked read, like CreateVerifications; on its first run another
    transaction spends the money between the read and the batch's end."""

    name = "hold_if_available"

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = RawSql(db)
        self.runs = 0

    async def run(self, conn: BatchConn, items: Sequence[int]) -> list[int | Exception]:
        self.runs += 1
        rows = await self.sql.fetch(conn, "SELECT balance - held FROM accounts WHERE id = 1")
        available = int(rows[0][0])
        if self.runs == 1:  # a second node takes everything meanwhile
            async with self.db.write() as other:
                await other.execute(text("UPDATE accounts SET held = balance WHERE id = 1"))
        out: list[int | Exception] = []
        for amount in items:
            if amount > available:
                out.append(NotEnoughMoney())
                continue
            available -= amount
            balances.current().add(1, held=amount)
            out.append(amount)
        return out


async def test_a_batch_decided_on_moved_money_is_decided_again(backend: str,
                                                                db_url: str) -> None:
    if backend == "sqlite":
        return  # one writer holds SQLite's write lock for the whole batch: nothing can move
    db = Database(db_url)
    batcher = WriteBatcher(db)
    op = _HoldIfAvailable(db)
    try:
        await _account(db, 1, 1000)
        with pytest.raises(NotEnoughMoney):
            await batcher.submit(op, 300)
        assert op.runs == 2  # refused by the final check, then decided again on fresh figures
        assert await _money(db, 1) == (1000, 1000)
    finally:
        await batcher.stop()
        await db.dispose()


async def test_the_database_itself_refuses_an_overdraft(db_url: str) -> None:
    """Whatever writes the row (an admin tool, a bug): the CHECK of migration 0009."""
    db = Database(db_url)
    try:
        await _account(db, 1, 100)
        for change in ("held = 101", "balance = -1, held = 0", "held = -1"):
            with pytest.raises(IntegrityError):
                async with db.write() as conn:
                    await conn.execute(text(f"UPDATE accounts SET {change} WHERE id = 1"))
        assert await _money(db, 1) == (100, 0)
    finally:
        await db.dispose()
