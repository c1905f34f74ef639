"""Driver-level SQL for the hot paths, written once with `?` placeholders.

SQLAlchemy Core is used everywhere else; the group-commit ops run a few statements over
hundreds of rows per batch, where building parameters through Core costs more than running
them. Three things differ by backend and are rendered here:
  * placeholders: `?` (sqlite3) or `$1, $2, ...` (asyncpg);
  * a list parameter `IN (?*)`: one JSON parameter through json_each on SQLite, one array
    parameter with `= ANY` on PostgreSQL (no per-element expansion on either);
  * many rows (`insert_rows`, `update_rows`): executemany on SQLite (a C loop in-process); on
    PostgreSQL one statement over one JSON parameter (`json_array_elements`). executemany
    there runs the statement once per row in the server (measured: 70-115 us per row, three
    quarters of a batch's time). One array parameter per column (`unnest`) was the first
    remedy, but asyncpg's array encoding cost four times the client CPU of orjson's one
    string, and the server's per-element casts to VARCHAR(n) more than parsing the JSON.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Boolean, Integer
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.db import Database
from kaskad.storage.schema import metadata


class RawSql:
    def __init__(self, db: Database) -> None:
        self.is_sqlite = db.is_sqlite
        self.lock = "" if db.is_sqlite else " FOR UPDATE"
        self._cache: dict[str, str] = {}
        # BulkWrites' statements: (SQLite, PostgreSQL) of each write, and each PostgreSQL
        # statement of several writes; fetch_many's statements
        self._bulk_cache: dict[tuple[Any, ...], Any] = {}

    def render(self, template: str) -> str:
        sql = self._cache.get(template)
        if sql is not None:
            return sql
        sql = self._lists(template)
        if not self.is_sqlite:
            sql = _numbered(sql)
        self._cache[template] = sql
        return sql

    def _lists(self, template: str) -> str:
        """The template with its lock suffix and list parameters rendered, still with `?`."""
        sql = template.replace("{lock}", self.lock)
        if self.is_sqlite:
            return sql.replace(" IN (?*)", " IN (SELECT value FROM json_each(?))")
        return sql.replace(" IN (?*)", " = ANY(?)")

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
        driver = await self.driver(conn)
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
    async def driver(conn: Any) -> Any:
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
        driver = await self.driver(conn)
        if self.is_sqlite:
            return list(await driver.execute_fetchall(sql, params))
        return list(await driver.fetch(sql, *params))

    async def fetch_many(self, conn: Any,
                         *queries: tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
        """Several independent reads in one round trip: each (template, params) gives its rows
        as `fetch` would (index them by position). SQLite runs them one after another (no
        round trips in-process); PostgreSQL runs one statement, each read's rows aggregated
        into one JSON array (json_agg keeps the column and row order of the read)."""
        if isinstance(conn, sqlite3.Connection) or self.is_sqlite:
            return [await self.fetch(conn, template, *params) for template, params in queries]
        key = ("fetch_many", *(template for template, _ in queries))
        sql = self._bulk_cache.get(key)
        if sql is None:
            reads = [f"(SELECT coalesce(json_agg(s), '[]') FROM ({self._lists(t)}) AS s)"
                     for t, _ in queries]
            sql = _numbered("SELECT " + ", ".join(reads))
            self._bulk_cache[key] = sql
        driver = await self.driver(conn)
        row = await driver.fetchrow(sql, *(p for _, params in queries for p in params))
        return [[tuple(r.values()) for r in orjson.loads(row[i])] for i in range(len(queries))]

    async def execute_many(self, conn: Any, template: str,
                           rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        sql = self.render(template)
        if isinstance(conn, sqlite3.Connection):
            conn.executemany(sql, rows)
            return
        driver = await self.driver(conn)
        await driver.executemany(sql, list(rows))

    async def insert(self, conn: Any, table: str,
                     rows: Sequence[dict[str, Any]]) -> None:
        """Insert dict rows that all have the same keys."""
        await self.writes().insert(table, rows).run(conn)

    async def insert_rows(self, conn: Any, table: str, columns: Sequence[str],
                          rows: Sequence[Sequence[Any]], suffix: str = "") -> None:
        """Insert tuples in `columns` order; `suffix` follows the values (e.g. ON CONFLICT)."""
        await self.writes().insert_rows(table, columns, rows, suffix).run(conn)

    async def update_rows(self, conn: Any, table: str, key: str, columns: Sequence[str],
                          rows: Sequence[Sequence[Any]], fixed: str = "") -> None:
        """See BulkWrites.update_rows."""
        await self.writes().update_rows(table, key, columns, rows, fixed).run(conn)

    def writes(self) -> BulkWrites:
        """Collect several many-row writes to run as one statement (PostgreSQL)."""
        return BulkWrites(self)


class BulkWrites:
    """Many rows' inserts and updates, run together: executemany after executemany on SQLite
    (in-process, no round trips), one statement on PostgreSQL, each write a data-modifying
    CTE over its own JSONB parameter (one round trip instead of one per table).

    The writes of one statement cannot see each other's rows, so use it for writes that do
    not depend on each other (one op's flush); each table at most once per kind.
    """

    def __init__(self, sql: RawSql) -> None:
        self.sql = sql
        # (signature for the statement cache, SQLite statement, PG statement with $n, rows)
        self._parts: list[tuple[tuple[Any, ...], str, str, Sequence[Sequence[Any]]]] = []

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> BulkWrites:
        if rows:
            columns = list(rows[0])
            self.insert_rows(table, columns, [tuple(r[c] for c in columns) for r in rows])
        return self

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    suffix: str = "") -> BulkWrites:
        if not rows:
            return self
        _check_width(rows, len(columns))
        signature = ("insert", table, tuple(columns), suffix)
        built = self.sql._bulk_cache.get(signature)
        if built is None:
            names = ", ".join(columns)
            built = (f"INSERT INTO {table} ({names}) VALUES "
                     f"({', '.join('?' * len(columns))}) {suffix}",
                     f"INSERT INTO {table} ({names}) SELECT "
                     f"{', '.join(_from_json(table, columns))} "
                     "FROM jsonb_array_elements($?::jsonb) AS r " + suffix)
            self.sql._bulk_cache[signature] = built
        self._parts.append((signature, *built, rows))
        return self

    def update_rows(self, table: str, key: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]], fixed: str = "") -> BulkWrites:
        """`UPDATE table SET column = value, ... [, fixed] WHERE key = value` for each row
        (the column values, then the key). Keys must be distinct; the rows to change should
        already be locked by this transaction (PostgreSQL locks them in join order here)."""
        if not rows:
            return self
        _check_width(rows, len(columns) + 1)
        if len({row[-1] for row in rows}) != len(rows):
            raise ValueError(f"update_rows on {table}: a {key} given twice")
        if any(part[0][:2] == ("update", table) for part in self._parts):
            raise ValueError(f"update_rows on {table} twice in one statement")
        signature = ("update", table, key, tuple(columns), fixed)
        built = self.sql._bulk_cache.get(signature)
        if built is None:
            extra = [fixed] if fixed else []
            *values, key_value = _from_json(table, [*columns, key])
            assigned = [f"{c} = {v}" for c, v in zip(columns, values, strict=True)] + extra
            built = (f"UPDATE {table} SET {', '.join([f'{c} = ?' for c in columns] + extra)} "
                     f"WHERE {key} = ?",
                     f"UPDATE {table} AS t SET {', '.join(assigned)} "
                     f"FROM jsonb_array_elements($?::jsonb) AS r WHERE t.{key} = {key_value}")
            self.sql._bulk_cache[signature] = built
        self._parts.append((signature, *built, rows))
        return self

    async def run(self, conn: Any) -> None:
        if not self._parts:
            return
        if self.sql.is_sqlite:
            for _, lite, _, rows in self._parts:
                await self.sql.execute_many(conn, lite, rows)
            return
        signature = tuple(part[0] for part in self._parts)
        statement = self.sql._bulk_cache.get(signature)
        if statement is None:
            pieces = [pg.replace("$?", f"${i}") for i, (_, _, pg, _) in enumerate(self._parts, 1)]
            statement = pieces[0] if len(pieces) == 1 else (
                "WITH " + ", ".join(f"w{i} AS ({p})" for i, p in enumerate(pieces, 1))
                + " SELECT 1")
            self.sql._bulk_cache[signature] = statement
        driver = await self.sql.driver(conn)
        await driver.execute(statement, *(orjson.dumps(rows).decode()
                                          for _, _, _, rows in self._parts))


def _numbered(sql: str) -> str:
    """`?` placeholders as asyncpg's `$1, $2, ...`."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


def _check_width(rows: Sequence[Sequence[Any]], width: int) -> None:
    if any(len(row) != width for row in rows):
        raise ValueError(f"rows must have {width} values")


def _from_json(table: str, columns: Sequence[str]) -> list[str]:
    """Each column's value out of a JSON row `r` (an array), typed as the schema says."""
    cols = metadata.tables[table].c
    out = []
    for i, name in enumerate(columns):
        kind = cols[name].type
        if isinstance(kind, Integer):
            out.append(f"(r->>{i})::bigint")
        elif isinstance(kind, Boolean):
            out.append(f"(r->>{i})::boolean")
        else:  # text: assigned to VARCHAR(n) with the usual length check
            out.append(f"r->>{i}")
    return out
