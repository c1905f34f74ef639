"""Driver-level SQL for the hot paths, written once with `?` placeholders.

SQLAlchemy Core is used everywhere else; the group-commit ops run a few statements over
hundreds of rows per batch, where building parameters through Core costs more than running
them. Three things differ by backend and are rendered here:
  * placeholders: `?` (sqlite3) or `$1, $2, ...` (asyncpg);
  * a list parameter `IN (?*)`: one JSON parameter through json_each on SQLite, one array
    parameter with `= ANY` on PostgreSQL (no per-element expansion on either);
  * many rows (`insert_rows`, `update_rows`): executemany on SQLite (a C loop in-process); on
    PostgreSQL one statement over `unnest()` of one array per column. executemany there runs
    the statement once per row in the server (measured: 70-115 us per row, three quarters of
    a batch's time); one statement over arrays costs a few us per row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.db import Database
from kaskad.storage.schema import metadata


class RawSql:
    def __init__(self, db: Database) -> None:
        self.is_sqlite = db.is_sqlite
        self.lock = "" if db.is_sqlite else " FOR UPDATE"
        self._cache: dict[str, str] = {}
        self._bulk_cache: dict[tuple[Any, ...], str] = {}

    def render(self, template: str) -> str:
        sql = self._cache.get(template)
        if sql is not None:
            return sql
        sql = template.replace("{lock}", self.lock)
        if self.is_sqlite:
            sql = sql.replace(" IN (?*)", " IN (SELECT value FROM json_each(?))")
        else:
            sql = sql.replace(" IN (?*)", " = ANY(?)")
            parts = sql.split("?")
            sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        self._cache[template] = sql
        return sql

    async def rendezvous(self, conn: Any, keys: Sequence[str]) -> None:
        """Serialise transactions that meet on the same keys (PostgreSQL advisory locks held
        to commit; SQLite's single writer already serialises everything).

        A delivery report and the attempt it belongs to can be written by two transactions at
        once; without this, neither sees the other's uncommitted row and the report is lost.
        The batcher calls it first in every transaction, keys sorted, so that these locks are
        always taken before row locks and in one order.
        """
        if self.is_sqlite or not keys:
            return
        driver = await self._driver(conn)
        await driver.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) "
            "FROM unnest($1::text[]) AS k ORDER BY k", sorted(set(keys)))

    def claim_due(self, table: str, key: str, due: str, sets: str, returning: str) -> str:
        """An atomic lease of due rows, one statement on both backends.

        Parameters, in order: the `sets` placeholders, now, now, now, now, limit. SQLAlchemy
        drops FOR UPDATE SKIP LOCKED on SQLite; there the single writer lock makes the UPDATE
        atomic, and on PostgreSQL SKIP LOCKED keeps concurrent claimers off each other's rows.
        The outer WHERE re-checks the lease, so a row re-read after a lock wait is not taken
        twice.
        """
        skip = "" if self.is_sqlite else " FOR UPDATE SKIP LOCKED"
        free = f"{due} IS NOT NULL AND {due} <= ? AND (lease_until IS NULL OR lease_until < ?)"
        return (f"UPDATE {table} SET {sets} WHERE {free} AND {key} IN ("
                f"SELECT {key} FROM {table} WHERE {free} ORDER BY {due} LIMIT ?{skip}) "
                f"RETURNING {returning}")

    def many(self, values: Sequence[Any]) -> Any:
        """The parameter for an `IN (?*)` list."""
        return orjson.dumps(list(values)).decode() if self.is_sqlite else list(values)

    @staticmethod
    async def _driver(conn: Any) -> Any:
        """The aiosqlite / asyncpg connection under SQLAlchemy's, inside its transaction.

        Going to the driver directly costs one thread hop per statement on aiosqlite (the
        SQLAlchemy adapter makes three: cursor, execute, fetch) and skips parameter processing.
        """
        if not isinstance(conn, AsyncConnection):
            return conn  # already the driver's (Database.batch() on PostgreSQL)
        raw = await conn.get_raw_connection()
        return raw.driver_connection

    async def fetch(self, conn: Any, template: str, *params: Any) -> list[Any]:
        """Rows as tuples (sqlite3) or Records (asyncpg): index them by position. `conn` is
        what Database.batch() gives (sqlite3) or an AsyncConnection."""
        sql = self.render(template)
        if isinstance(conn, sqlite3.Connection):
            return conn.execute(sql, params).fetchall()
        driver = await self._driver(conn)
        if self.is_sqlite:
            return list(await driver.execute_fetchall(sql, params))
        return list(await driver.fetch(sql, *params))

    async def execute_many(self, conn: Any, template: str,
                           rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        sql = self.render(template)
        if isinstance(conn, sqlite3.Connection):
            conn.executemany(sql, rows)
            return
        driver = await self._driver(conn)
        await driver.executemany(sql, list(rows))

    async def insert(self, conn: Any, table: str,
                     rows: Sequence[dict[str, Any]]) -> None:
        """Insert dict rows that all have the same keys."""
        if not rows:
            return
        columns = list(rows[0])
        await self.insert_rows(conn, table, columns, [tuple(r[c] for c in columns) for r in rows])

    async def insert_rows(self, conn: Any, table: str, columns: Sequence[str],
                          rows: Sequence[Sequence[Any]], suffix: str = "") -> None:
        """Insert tuples in `columns` order; `suffix` follows the values (e.g. ON CONFLICT)."""
        if not rows:
            return
        if self.is_sqlite:
            await self.execute_many(conn, f"INSERT INTO {table} ({', '.join(columns)}) "
                                          f"VALUES ({', '.join('?' * len(columns))}) {suffix}",
                                    rows)
            return
        key = ("insert", table, tuple(columns), suffix)
        sql = self._bulk_cache.get(key)
        if sql is None:
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
                   f"SELECT * FROM {self._unnest(table, columns)} {suffix}")
            self._bulk_cache[key] = sql
        await self._pg_arrays(conn, sql, rows, len(columns))

    async def update_rows(self, conn: Any, table: str, key: str, columns: Sequence[str],
                          rows: Sequence[Sequence[Any]], fixed: str = "") -> None:
        """`UPDATE table SET column = value, ... [, fixed] WHERE key = value` for each row
        (the column values, then the key). Keys must be distinct; the rows to change should
        already be locked by this transaction (PostgreSQL locks them in join order here)."""
        if not rows:
            return
        if len({row[-1] for row in rows}) != len(rows):
            raise ValueError(f"update_rows on {table}: a {key} given twice")
        sets = [f"{c} = ?" for c in columns] + ([fixed] if fixed else [])
        if self.is_sqlite:
            await self.execute_many(
                conn, f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = ?", rows)
            return
        cache_key = ("update", table, key, tuple(columns), fixed)
        sql = self._bulk_cache.get(cache_key)
        if sql is None:
            names = [*columns, key]
            assigned = [f"{c} = u.{c}" for c in columns] + ([fixed] if fixed else [])
            sql = (f"UPDATE {table} AS t SET {', '.join(assigned)} "
                   f"FROM {self._unnest(table, names)} AS u({', '.join(names)}) "
                   f"WHERE t.{key} = u.{key}")
            self._bulk_cache[cache_key] = sql
        await self._pg_arrays(conn, sql, rows, len(columns) + 1)

    @staticmethod
    def _unnest(table: str, columns: Sequence[str]) -> str:
        """`unnest($1::type[], ...)` with each column's PostgreSQL type from the schema."""
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        cols = metadata.tables[table].c
        arrays = [f"${i}::{cols[c].type.compile(dialect=dialect)}[]"
                  for i, c in enumerate(columns, 1)]
        return f"unnest({', '.join(arrays)})"

    async def _pg_arrays(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]],
                         width: int) -> None:
        """Run `sql` with one array parameter per column (the rows transposed)."""
        columns = [list(col) for col in zip(*rows, strict=True)] if rows else []
        if len(columns) != width:
            raise ValueError(f"rows of {len(columns)} values for {width} columns")
        driver = await self._driver(conn)
        await driver.execute(sql, *columns)
