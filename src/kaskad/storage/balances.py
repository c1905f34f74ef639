"""Account balance changes of one group commit, applied together as its last statement.

Every batch that holds, captures or releases money changes its accounts' rows, and a changed
row stays locked until COMMIT. Were the rows changed (or locked for reading) where each op
decides, one account's row would be locked for the whole batch, and two writers (PostgreSQL:
several per process, several nodes) would run one after the other. So the ops only add their
changes here; the batcher applies them all just before COMMIT, and an account's row is locked
for one statement and the commit.

Deciding without the lock is safe because the final statement re-checks what the decision
assumed: an account's available money (`balance - held`) may not go below zero. If another
transaction spent it in between, the statement changes nothing for that account and the batch
fails with `BalanceMoved`; the batcher then runs its items again one by one, reading afresh.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from kaskad.storage.rawsql import RawSql


class BalanceMoved(Exception):
    """An account's money changed under a batch's decision; run the batch's items again."""


class BalanceChanges:
    """Per account: [balance delta, held delta] of one transaction."""

    def __init__(self) -> None:
        self.deltas: dict[int, list[int]] = {}

    def add(self, account_id: int, *, balance: int = 0, held: int = 0) -> None:
        d = self.deltas.setdefault(account_id, [0, 0])
        d[0] += balance
        d[1] += held

    def rows(self) -> list[tuple[int, int, int]]:
        """(account id, balance delta, held delta), by id (the order rows are locked in)."""
        return [(a, b, h) for a, (b, h) in sorted(self.deltas.items()) if b or h]


# The changes of the transaction the current writer task is in (set by storage.batch).
_current: ContextVar[BalanceChanges] = ContextVar("kaskad_balance_changes")


def current() -> BalanceChanges:
    """The running batch's changes; ops that move money add to it."""
    return _current.get()


def begin() -> BalanceChanges:
    changes = BalanceChanges()
    _current.set(changes)
    return changes


_APPLY_SQLITE = ("UPDATE accounts SET balance = balance + ?, held = held + ? "
                 "WHERE id = ? AND balance + ? >= held + ? RETURNING id")
_LOCK_PG = "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE"
_APPLY_PG = (
    "UPDATE accounts AS a SET balance = a.balance + u.b, held = a.held + u.h "
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, b, h) "
    "WHERE a.id = u.id AND a.balance + u.b >= a.held + u.h RETURNING a.id")


async def apply(sql: RawSql, conn: Any, changes: BalanceChanges) -> None:
    """Apply the changes, each only if it leaves the account's available money >= 0."""
    rows = changes.rows()
    if not rows:
        return
    if sql.is_sqlite:  # the single writer: one short statement per account
        done = [found for account_id, balance, held in rows
                for found in await sql.fetch(conn, _APPLY_SQLITE, balance, held, account_id,
                                             balance, held)]
    else:
        driver = await sql.driver(conn)
        if len(rows) > 1:  # several rows: lock them in id order, as every writer does
            await driver.execute(_LOCK_PG, [r[0] for r in rows])
        done = await driver.fetch(_APPLY_PG, *([r[i] for r in rows] for i in range(3)))
    if len(done) != len(rows):
        missed = sorted({r[0] for r in rows} - {found[0] for found in done})
        raise BalanceMoved(f"accounts {missed}")
