"""RawSql's many-row statements: executemany on SQLite, one statement over unnest() arrays on
PostgreSQL. Both must leave exactly the same rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql

COST_COLUMNS = ("channel", "provider_ref", "request_id", "kind", "amount_micros", "currency",
                "created_at")


async def _rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    async with db.read() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


async def test_insert_rows_with_nulls_and_on_conflict(db_url: str) -> None:
    db = Database(db_url)
    sql = RawSql(db)
    try:
        rows = [("sms", "ref-1", "rq-1", "charge", 1500, "RUB", 10),
                ("sms", "ref-2", None, "charge", 0, "RUB", 11),
                ("sms", "ref-1", "rq-1", "charge", 9999, "RUB", 12)]  # a repeat: ignored
        async with db.batch() as conn:
            await sql.insert_rows(conn, "provider_costs", COST_COLUMNS, rows,
                                  "ON CONFLICT (channel, provider_ref, kind) DO NOTHING")
            await sql.insert_rows(conn, "provider_costs", COST_COLUMNS, [])
        got = await _rows(db, "SELECT provider_ref, request_id, amount_micros, created_at "
                              "FROM provider_costs ORDER BY provider_ref")
        assert got == [("ref-1", "rq-1", 1500, 10), ("ref-2", None, 0, 11)]
    finally:
        await db.dispose()


async def test_update_rows_sets_columns_and_the_fixed_part(db_url: str) -> None:
    db = Database(db_url)
    sql = RawSql(db)
    try:
        async with db.batch() as conn:
            await sql.insert(conn, "accounts", [dict(id=1, name="a", callback_secret="s",
                                                     created_at=1)])
        entries = [dict(event_id=f"ev-{i}", account_id=1, request_id=None, method="POST",
                        url="http://127.0.0.1/", body="{}", attempts=0, next_attempt_at=5,
                        created_at=1) for i in range(3)]
        async with db.batch() as conn:
            await sql.insert(conn, "outbox", entries)
        ids = [r[0] for r in await _rows(db, "SELECT id FROM outbox ORDER BY event_id")]
        async with db.batch() as conn:
            await sql.update_rows(
                conn, "outbox", "id", ("next_attempt_at", "delivered_at", "last_error"),
                [(None, 77, "", ids[0]), (99, None, "timeout", ids[2])],
                fixed="attempts = attempts + 1, lease_until = NULL")
        got = await _rows(db, "SELECT event_id, attempts, next_attempt_at, delivered_at, "
                              "last_error FROM outbox ORDER BY event_id")
        assert got == [("ev-0", 1, None, 77, ""), ("ev-1", 0, 5, None, ""),
                       ("ev-2", 1, 99, None, "timeout")]
    finally:
        await db.dispose()


async def test_update_rows_refuses_a_key_given_twice(db_url: str) -> None:
    db = Database(db_url)
    sql = RawSql(db)
    try:
        with pytest.raises(ValueError, match="given twice"):
            async with db.batch() as conn:
                await sql.update_rows(conn, "outbox", "id", ("last_error",),
                                      [("a", 1), ("b", 1)])
    finally:
        await db.dispose()


async def test_writes_of_several_tables_run_together(db_url: str) -> None:
    """One op's flush: an update and inserts into three tables (one statement on PostgreSQL)."""
    db = Database(db_url)
    sql = RawSql(db)
    try:
        async with db.batch() as conn:
            await sql.insert(conn, "accounts", [dict(id=1, name="a", callback_secret="s",
                                                     created_at=1)])
            await sql.insert(conn, "outbox", [dict(event_id="ev", account_id=1, url="u",
                                                   body="{}", next_attempt_at=5, created_at=1)])
        out_id = (await _rows(db, "SELECT id FROM outbox"))[0][0]
        async with db.batch() as conn:
            await (sql.writes()
                   .update_rows("outbox", "id", ("last_error",), [("boom", out_id)])
                   .insert("ledger", [dict(account_id=1, kind="hold", amount=150,
                                           request_id="rq", note="", created_at=2)])
                   .insert("ledger", [])  # nothing to write: no part
                   .insert_rows("provider_costs", COST_COLUMNS,
                                [("sms", "r", "rq", "charge", 7, "RUB", 3)] * 2,
                                "ON CONFLICT (channel, provider_ref, kind) DO NOTHING")
                   .run(conn))
        assert await _rows(db, "SELECT last_error FROM outbox") == [("boom",)]
        assert await _rows(db, "SELECT kind, amount FROM ledger") == [("hold", 150)]
        assert await _rows(db, "SELECT amount_micros FROM provider_costs") == [(7,)]
        with pytest.raises(ValueError, match="twice in one statement"):
            (sql.writes().update_rows("outbox", "id", ("last_error",), [("a", out_id)])
             .update_rows("outbox", "id", ("last_error",), [("b", out_id)]))
    finally:
        await db.dispose()


async def test_fetch_many_reads_as_fetch_would(db_url: str) -> None:
    """Several reads in one round trip (one statement on PostgreSQL): the same rows, values and
    order as one fetch each, an empty read included."""
    db = Database(db_url)
    sql = RawSql(db)
    try:
        async with db.batch() as conn:
            await sql.insert(conn, "accounts", [
                dict(id=i, name=f"a{i}", callback_secret="s", created_at=1, balance=100 * i,
                     disabled=i == 2, email=None) for i in (1, 2, 3)])
        reads = (("SELECT id, name, disabled, balance, email FROM accounts "
                  "WHERE id IN (?*) ORDER BY id DESC", (sql.many([3, 2]),)),
                 ("SELECT id FROM accounts WHERE balance > ?", (1000,)),
                 ("SELECT name FROM accounts WHERE id IN (SELECT id FROM accounts "
                  "WHERE id IN (?*)) ORDER BY name", (sql.many([1, 3]),)))
        async with db.batch() as conn:
            together = await sql.fetch_many(conn, *reads)
            alone = [[tuple(r) for r in await sql.fetch(conn, t, *p)] for t, p in reads]
        assert together == alone
        assert together[0] == [(3, "a3", False, 300, None), (2, "a2", True, 200, None)]
        assert together[1] == [] and together[2] == [("a1",), ("a3",)]
    finally:
        await db.dispose()
