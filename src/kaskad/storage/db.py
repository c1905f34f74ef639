"""Connections to SQLite (embedded default, WAL) or PostgreSQL (scale-out), behind one small API.

SQLite gets two engines: a single writer connection whose transactions start with
`BEGIN IMMEDIATE` (so a read-decide-write batch holds the write lock from its first statement),
and a pool of readers that WAL lets run beside it. PostgreSQL gets one pooled engine; batches
that decide on rows lock them with `FOR UPDATE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# asyncpg prepares every statement once per connection; PostgreSQL then settles on a generic
# plan made while the tables were small and keeps seq-scanning them as they grow (measured:
# three full scans of verifications and one of attempts per request, latency rising minute by
# minute). Custom plans see the tables' real sizes; planning these short statements is cheap.
PG_SETTINGS = {"plan_cache_mode": "force_custom_plan"}

# The group-commit connection (storage.batch) runs a few dozen statements, always the same,
# and every one of them reaches its rows through an index: a key, a reference, a due time.
# Planning them afresh on every run cost more than running them (measured with
# pg_stat_statements: 80-115 us of planning per statement, a batch's flush 440 us). So they
# are planned once per connection, generic, and the plans that only pay off on big sets of
# rows (sequential and bitmap scans, hash and merge joins) are priced out: the generic plan is
# the index plan however small the tables were when it was made. Measured on the bench:
# flush 440 -> 170 us, max 3,200 -> 3,850 req/s, p99 at 1,000 req/s 30-43 -> 21-24 ms.
BATCH_PG_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off",
                     "enable_bitmapscan": "off", "enable_hashjoin": "off",
                     "enable_mergejoin": "off"}


class Database:
    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._batch_conn: sqlite3.Connection | None = None
        self._pg_conns: dict[int, Any] = {}  # asyncpg.Connection of each writer's batches
        self._pg_batch_locks: dict[int, asyncio.Lock] = {}
        self._checkpointer: _Checkpointer | None = None
        self._committer: ThreadPoolExecutor | None = None  # SQLite: the batches' COMMITs
        self._sqlite_path = parsed.database or ":memory:"
        if self.is_sqlite:
            db_path = parsed.database
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            self.writer = self._sqlite_engine(url, immediate=True)
            self.reader = self._sqlite_engine(url, immediate=False)
        else:
            self.writer = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size,
                                              pool_pre_ping=False,
                                              connect_args={"server_settings": PG_SETTINGS})
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
    async def batch(self, writer: int = 0, *, big: bool = False) -> AsyncIterator[Any]:
        """The transaction of one group commit (storage.batch): a plain sqlite3 connection
        used synchronously on SQLite, a plain asyncpg connection on PostgreSQL.

        Why plain asyncpg: through SQLAlchemy's pool and adapter a batch paid a pool checkout,
        a greenlet hop per statement, a lazy BEGIN kick and a reset on return (measured:
        ~10 ms of CPU per verification at 50 req/s). The batch connection is this process's
        one writer; its statements are prepared once and cached by asyncpg.

        Why synchronous on SQLite: a batch's SQLite work is about a millisecond, but through
        aiosqlite every statement was a thread hop that waited for a turn of the busy event
        loop (measured: p50 16 ms at 500 req/s). Here BEGIN, the statements and COMMIT run in
        one burst. BEGIN does not wait for the lock in SQLite (timeout 0): it retries with an
        async sleep, so a writer elsewhere in this process (SQLAlchemy's) can always finish.
        WAL checkpoints run on a background thread, so COMMIT never syncs on the loop; a
        `big` batch's COMMIT itself goes to a thread too (see `_commit_off_loop`), one hop.
        """
        if not self.is_sqlite:
            async with self._pg_batch_locks.setdefault(writer, asyncio.Lock()):
                pg = await self._pg_batch_connection(writer)
                transaction = pg.transaction()
                await transaction.start()
                try:
                    yield pg
                except BaseException:
                    if not pg.is_closed():
                        await transaction.rollback()
                    raise
                await transaction.commit()
            return
        conn = self._batch_connection()
        delay = 0.0005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.004)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            if big:
                await self._commit_off_loop(conn)
            else:
                conn.execute("COMMIT")
        except Exception:
            # a COMMIT that fails (a deferred constraint, a full disk) leaves the transaction
            # open, and the next BEGIN would fail with it
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _commit_off_loop(self, conn: sqlite3.Connection) -> None:
        """COMMIT on a thread of its own, for `big` batches: it writes the transaction's pages
        to the WAL, the biggest single cost of a large group commit (py-spy on the SMS path:
        12% of the event loop's thread), and sqlite3 releases the GIL while it does, so the
        loop serves requests meanwhile. A small batch's COMMIT costs less than the hop and the
        turn of the loop that brings its end back (measured: 6% fewer messages/s with every
        COMMIT sent off the loop at one SMPP bind, 55 writes per commit; 17% more at four
        binds, 120 writes per commit)."""
        assert self._committer is not None
        done = asyncio.get_running_loop().run_in_executor(self._committer, conn.execute,
                                                          "COMMIT")
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])  # the connection is not free until it is over
            if conn.in_transaction:  # the COMMIT failed
                conn.execute("ROLLBACK")
            raise

    async def _pg_batch_connection(self, writer: int) -> Any:
        import asyncpg

        conn = self._pg_conns.get(writer)
        if conn is None or conn.is_closed():
            dsn = make_url(self.url).set(drivername="postgresql")
            conn = await asyncpg.connect(dsn.render_as_string(hide_password=False),
                                         server_settings=BATCH_PG_SETTINGS)
            self._pg_conns[writer] = conn
        return conn

    def _batch_connection(self) -> sqlite3.Connection:
        if self._batch_conn is None:
            conn = sqlite3.connect(self._sqlite_path, timeout=0, isolation_level=None,
                                   check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "cache_size=-65536", "temp_store=MEMORY", "wal_autocheckpoint=0"):
                conn.execute("PRAGMA " + pragma)
            self._batch_conn = conn
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-commit")
            self._checkpointer = _Checkpointer(self._sqlite_path)
            self._checkpointer.start()
        return self._batch_conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        if self._batch_conn is not None:
            self._batch_conn.close()
            self._batch_conn = None
        for conn in self._pg_conns.values():
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
        self._pg_conns = {}
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


class _Checkpointer(threading.Thread):
    """Moves the WAL into the database file every second (PASSIVE: never blocks writers), off
    the event loop; the batch connection has automatic checkpoints switched off."""

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self.path = path
        self.interval_s = interval_s
        self._halt = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=1, isolation_level=None)
        try:
            while not self._halt.wait(self.interval_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # busy now; the next round catches up
        finally:
            conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
