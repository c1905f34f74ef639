"""storage.batch's group commit: while the process is saturated, small commits wait to carry
more writes; with CPU to spare, every batch commits at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import text

from kaskad.storage.batch import BatchConn, BatchOp, WriteBatcher
from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql


class _Note(BatchOp[int, int]):
    """Writes nothing; notes the items of every batch it ran in."""

    name = "note"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def run(self, conn: BatchConn, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        return list(items)


async def _three_writes(batcher: WriteBatcher, op: _Note) -> None:
    """One write; right after its commit a second, and 50 ms later a third."""
    await batcher.submit(op, 1)
    second = asyncio.create_task(batcher.submit(op, 2))
    await asyncio.sleep(0.05)
    third = asyncio.create_task(batcher.submit(op, 3))
    assert await asyncio.gather(second, third) == [2, 3]


async def test_a_saturated_process_coalesces_small_commits(db_url: str) -> None:
    db = Database(db_url)
    batcher = WriteBatcher(db, coalesce_s=0.5)
    op = _Note()
    try:
        batcher.coalescing = True  # as if the event loop's thread had been busy
        batcher._window = (asyncio.get_running_loop().time() + 60, 0.0)  # and stays so here
        await _three_writes(batcher, op)
        assert op.batches == [[1], [2, 3]]  # the second waited for the third
    finally:
        await batcher.stop()
        await db.dispose()


async def test_a_process_with_cpu_to_spare_commits_at_once(db_url: str) -> None:
    db = Database(db_url)
    batcher = WriteBatcher(db, coalesce_s=0.5)
    op = _Note()
    try:
        await asyncio.sleep(0.3)  # an idle quarter second: the busy share is measured low
        await _three_writes(batcher, op)
        assert op.batches == [[1], [2], [3]] and not batcher.coalescing
    finally:
        await batcher.stop()
        await db.dispose()


# --- big batches: SQLite commits them off the event loop's thread -----------------------------

class _Insert(BatchOp[int, int]):
    """Item k >= 0: a row k. Item -k: a row 1000 + k whose parent, row k, must exist by COMMIT
    (a deferred foreign key: a missing parent fails the COMMIT itself, not the INSERT)."""

    name = "insert"

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)

    async def run(self, conn: BatchConn, items: Sequence[int]) -> list[int | Exception]:
        rows = [(i, None) if i >= 0 else (1000 - i, -i) for i in items]
        await self.sql.execute_many(
            conn, "INSERT INTO commit_probe (id, parent_id) VALUES (?, ?)", rows)
        return list(items)


async def _probe(db_url: str, big_batch: int) -> tuple[Database, WriteBatcher, _Insert,
                                                        list[tuple[str, str]]]:
    """A database with the probe table, a batcher, and the (statement, thread) of every
    COMMIT on SQLite's batch connection."""
    db = Database(db_url)
    async with db.write() as conn:  # (left behind if a run was interrupted)
        await conn.execute(text("DROP TABLE IF EXISTS commit_probe"))
        await conn.execute(text(
            "CREATE TABLE commit_probe (id BIGINT PRIMARY KEY, parent_id BIGINT "
            "REFERENCES commit_probe (id) DEFERRABLE INITIALLY DEFERRED)"))
    commits: list[tuple[str, str]] = []
    if db.is_sqlite:
        db._batch_connection().set_trace_callback(
            lambda sql: commits.append((sql, threading.current_thread().name))
            if sql == "COMMIT" else None)
    return db, WriteBatcher(db, big_batch=big_batch), _Insert(db), commits


async def _close(db: Database, batcher: WriteBatcher) -> None:
    """Stop, and drop the probe table: PostgreSQL's test database outlives the test, and the
    migration tests compare its tables with the declared schema."""
    await batcher.stop()
    async with db.write() as conn:
        await conn.execute(text("DROP TABLE commit_probe"))
    await db.dispose()


async def _ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return [r[0] for r in await conn.execute(text("SELECT id FROM commit_probe ORDER BY id"))]


async def test_a_big_batch_commits_off_the_loop_and_a_small_one_on_it(db_url: str) -> None:
    db, batcher, op, commits = await _probe(db_url, big_batch=3)
    try:
        assert await batcher.submit_many(op, [1, 2, 3, 4]) == [1, 2, 3, 4]  # one batch
        assert await batcher.submit(op, 5) == 5  # a batch of one
        assert await _ids(db) == [1, 2, 3, 4, 5]
        if db.is_sqlite:
            big, small = commits[-2][1], commits[-1][1]
            assert big.startswith("sqlite-commit")
            assert small == threading.current_thread().name
    finally:
        await _close(db, batcher)


@pytest.mark.parametrize("big_batch", [1, 1000], ids=["off-loop", "on-loop"])
async def test_a_failing_commit_leaves_nothing_and_the_next_batches_run(
        db_url: str, big_batch: int) -> None:
    db, batcher, op, _ = await _probe(db_url, big_batch=big_batch)
    try:
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            await batcher.submit(op, -7)  # row 1007's parent, 7, does not exist
        assert await _ids(db) == []
        # A batch whose COMMIT fails is retried item by item: only the bad item fails.
        results = await asyncio.gather(*(batcher.submit(op, i) for i in (1, -9, 2)),
                                       return_exceptions=True)
        assert results[0] == 1 and results[2] == 2 and isinstance(results[1], Exception)
        assert await batcher.submit_many(op, [7, -7]) == [7, -7]
        assert await _ids(db) == [1, 2, 7, 1007]
    finally:
        await _close(db, batcher)
