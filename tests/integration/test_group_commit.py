"""storage.batch's group commit: while the process is saturated, small commits wait to carry
more writes; with CPU to spare, every batch commits at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from kaskad.storage.batch import BatchConn, BatchOp, WriteBatcher
from kaskad.storage.db import Database


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
