"""Group commit: many callers' writes executed together in one transaction.

Throughput of an OLTP gateway is bounded by commits (fsync) and statement round trips. Every
write in kaskad is a `BatchOp`: callers submit items and await their own result; one writer task
takes everything queued, runs each op once over its items (so N verifications cost a handful of
statements, not N), commits once and resolves every caller. An op must make no writes for an
item it rejects, so a per-item error never leaves anything half-written. If the batch itself
fails (a database error), each item is retried alone so one bad item cannot sink the others.

Money moves last: ops add their balance changes to `storage.balances`, applied as the
transaction's final statement, so concurrent writers meet on an account's row only briefly.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage import balances
from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql

log = structlog.get_logger(__name__)

# What an op runs on: Database.batch()'s sqlite3 connection, or an AsyncConnection
# (PostgreSQL). Ops reach it only through storage.rawsql.RawSql, which takes either.
BatchConn = sqlite3.Connection | AsyncConnection

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


# What to do once the running batch's transaction has committed (set per transaction).
_after_commit: ContextVar[list[Callable[[], None]]] = ContextVar("kaskad_after_commit")


def after_commit(action: Callable[[], None]) -> None:
    """Call `action` (on the event loop, without awaiting) once the transaction of the op that
    calls this has committed; never if it fails. For hand-overs of rows the transaction
    writes, such as status callbacks to send at once."""
    _after_commit.get().append(action)


class BatchOp(Generic[I, R]):
    """One kind of write. `run` returns one result (or exception instance) per item, in order."""

    name = "op"
    # Ops run in this order inside every batch transaction, so that concurrent transactions
    # (PostgreSQL: several writers and nodes) take their locks in one order.
    order = 50

    async def run(self, conn: BatchConn, items: Sequence[I]) -> list[R | Exception]:
        raise NotImplementedError

    def rendezvous_keys(self, items: Sequence[I]) -> list[str]:
        """Keys this op must hold before touching rows (see RawSql.rendezvous)."""
        return []


class _Pending:
    __slots__ = ("future", "item", "op")

    def __init__(self, op: BatchOp[Any, Any], item: Any, future: asyncio.Future[Any]) -> None:
        self.op = op
        self.item = item
        self.future = future


class WriteBatcher:
    def __init__(self, db: Database, *, max_batch: int = 512, writers: int | None = None,
                 coalesce_s: float = 0.0, coalesce_below: int = 32,
                 big_batch: int = 80) -> None:
        self.db = db
        self.max_batch = max_batch
        # When the process is saturated, commits that follow each other closely carry few
        # writes each, and every commit has its fixed cost (measured on SQLite, one SMPP bind:
        # 14 writes per commit and 511 us of CPU per message; four binds: 52 and 399 us). So
        # while the event loop's thread is busy (over 90% of the last quarter second, until it
        # falls under 75%), a batch of fewer than `coalesce_below` writes waits until
        # `coalesce_s` after the previous commit began. A process with CPU to spare commits at
        # once: latency is traded for throughput only when throughput is what is short.
        self.coalesce_s = coalesce_s
        self.coalesce_below = coalesce_below
        self.coalescing = False
        self._last_start = 0.0
        self._window = (0.0, 0.0)  # (loop time, thread CPU time) the busy share is taken from
        # One writer by default. More (PostgreSQL only, each on its own connection) helped
        # the foundation bench and slowed the SMS path (measured: 2,167 -> 1,947 msg/s): a
        # delivery report and its attempt meet on their rendezvous lock, and one account's
        # row serialises the commits. Nodes and worker processes write concurrently anyway;
        # see storage.balances for why account rows are locked only at the end.
        self.writers = writers or 1
        self.big_batch = big_batch  # SQLite: batches of this many writes commit off the loop
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sql = RawSql(db)
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(i), name=f"writer-{i}")
                           for i in range(self.writers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def submit(self, op: BatchOp[I, R], item: I) -> R:
        return await self.enqueue(op, item)

    def enqueue(self, op: BatchOp[I, R], item: I) -> asyncio.Future[R]:
        """Queue a write and return its future, for callers that react by callback."""
        if not self._tasks:
            self.start()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(op, item, future))
        return future

    async def submit_many(self, op: BatchOp[I, R], items: Sequence[I]) -> list[R]:
        # the futures themselves: gathering `submit` coroutines made a task per item, and
        # queued each item only when its task first ran, a turn of the loop later
        return list(await asyncio.gather(*(self.enqueue(op, item) for item in items)))

    async def _loop(self, writer: int) -> None:
        while True:
            batch = [await self._queue.get()]
            try:
                # One turn of the loop before taking the batch: writes that are already on
                # their way (other tasks' steps made runnable in this same turn) join it.
                # Measured on the SMS path: 8 -> 14 writes per group commit.
                await asyncio.sleep(0)
                if self.coalesce_s:
                    await self._coalesce()
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._execute(batch, writer)
            except asyncio.CancelledError:
                for p in batch:
                    if not p.future.done():
                        p.future.cancel()
                raise

    async def _coalesce(self) -> None:
        now = asyncio.get_running_loop().time()
        since, cpu = self._window
        if now - since >= 0.25:
            busy = (time.thread_time() - cpu) / (now - since)
            self.coalescing = busy > (0.75 if self.coalescing else 0.9)
            self._window = (now, time.thread_time())
        if self.coalescing and self._queue.qsize() + 1 < self.coalesce_below:
            wait = self._last_start + self.coalesce_s - now
            if wait > 0:
                await asyncio.sleep(wait)
                now += wait
        self._last_start = now

    async def _execute(self, batch: list[_Pending], writer: int = 0,
                       retries_left: int = 3) -> None:
        try:
            results = await self._run_in_transaction(batch, writer)
        except Exception as exc:  # a database error: isolate the item that caused it
            if len(batch) > 1:
                for pending in batch:
                    await self._execute([pending], writer)
                return
            if isinstance(exc, balances.BalanceMoved) and retries_left:
                # decide again on fresh figures
                await self._execute(batch, writer, retries_left - 1)
                return
            log.warning("write failed", op=batch[0].op.name, error=repr(exc))
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        self.batches += 1
        self.items += len(batch)
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, Exception):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)

    async def _run_in_transaction(self, batch: list[_Pending], writer: int) -> list[Any]:
        groups: dict[int, tuple[BatchOp[Any, Any], list[int]]] = {}
        for index, pending in enumerate(batch):
            groups.setdefault(id(pending.op), (pending.op, []))[1].append(index)
        results: list[Any] = [None] * len(batch)
        ordered = sorted(groups.values(), key=lambda g: g[0].order)
        keys = [key for op, indexes in ordered
                for key in op.rendezvous_keys([batch[i].item for i in indexes])]
        changes = balances.begin()
        actions: list[Callable[[], None]] = []
        _after_commit.set(actions)
        async with self.db.batch(writer, big=len(batch) >= self.big_batch) as conn:
            # All of a transaction's rendezvous locks first, in one sorted sweep, before any
            # row lock: taking them mid-transaction deadlocked against account row locks.
            await self._sql.rendezvous(conn, keys)
            for op, indexes in ordered:
                out = await op.run(conn, [batch[i].item for i in indexes])
                for i, result in zip(indexes, out, strict=True):
                    results[i] = result
            await balances.apply(self._sql, conn, changes)
        for action in actions:
            try:
                action()
            except Exception as exc:  # what was committed stands; the hand-over is an extra
                log.error("after-commit action failed", error=repr(exc))
        return results
