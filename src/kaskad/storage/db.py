"""Connections to SQLite (embedded default, WAL) or PostgreSQL (scale-out), behind one small API.

SQLite gets two engines: a single writer connection whose transactions start with
`BEGIN IMMEDIATE` (so a read-decide-write batch holds the write lock from its first statement),
and a pool of readers that WAL lets run beside it. PostgreSQL gets one pooled engine; batches
that decide on rows lock them with `FOR UPDATE`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


class Database:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            db_path = parsed.database
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            self.writer = self._sqlite_engine(url, immediate=True)
            self.reader = self._sqlite_engine(url, immediate=False)
        else:
            self.writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size,
                                              pool_pre_ping=False)
            self.reader = self.writer

    @staticmethod
    def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
        # One long-lived writer connection (SQLite has one writer anyway); a few readers.
        size = 1 if immediate else 4
        engine = create_async_engine(url, pool_size=size, max_overflow=0,
                                     connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @property
    def for_update(self) -> str:
        """Row-locking suffix for read-decide-write; SQLite's writer lock already serialises."""
        return "" if self.is_sqlite else " FOR UPDATE"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.writer.begin() as conn:
            if not self.is_sqlite:
                # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement;
                # driver-level statements (storage.rawsql) must not run before it, or they
                # would autocommit outside the transaction and its row locks.
                await conn.exec_driver_sql("SELECT 1")
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
