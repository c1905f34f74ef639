"""Driver-level SQL for the hot paths, written once with `?` placeholders.

SQLAlchemy Core is used everywhere else; the group-commit ops run a few statements over
hundreds of rows per batch, where building parameters through Core costs more than running
them. Two things differ by backend and are rendered here:
  * placeholders: `?` (sqlite3) or `$1, $2, ...` (asyncpg);
  * a list parameter `IN (?*)`: one JSON parameter through json_each on SQLite, one array
    parameter with `= ANY` on PostgreSQL (no per-element expansion on either).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.db import Database


class RawSql:
    def __init__(self, db: Database) -> None:
        self.is_sqlite = db.is_sqlite
        self.lock = "" if db.is_sqlite else " FOR UPDATE"
        self._cache: dict[str, str] = {}

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
        template = (f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})")
        await self.execute_many(conn, template, [tuple(r[c] for c in columns) for r in rows])
