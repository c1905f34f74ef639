"""In-process notice board of state changes, so an API call can await its verification's next
state instead of polling the database."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from kaskad.storage.verifications import Verification

Predicate = Callable[[Verification], bool]


class StateBus:
    def __init__(self, sweep_interval_s: float = 0.05) -> None:
        self._waiters: dict[str, list[tuple[Predicate, asyncio.Future[Verification | None]]]] = {}
        self._listeners: list[Callable[[Verification], None]] = []
        # Deadlines of waiters, swept together: one timer for all instead of one per request.
        self._deadlines: deque[tuple[float, asyncio.Future[Verification | None]]] = deque()
        self._sweep_interval_s = sweep_interval_s
        self._sweeper: asyncio.Task[None] | None = None

    def listen(self, listener: Callable[[Verification], None]) -> None:
        """Called on every published change (metrics, waking the callback sender)."""
        self._listeners.append(listener)

    def publish(self, v: Verification) -> None:
        for listener in self._listeners:
            listener(v)
        waiters = self._waiters.get(v.request_id)
        if not waiters:
            return
        keep = []
        for predicate, future in waiters:
            if future.done():
                continue
            if predicate(v):
                future.set_result(v)
            else:
                keep.append((predicate, future))
        if keep:
            self._waiters[v.request_id] = keep
        else:
            del self._waiters[v.request_id]

    def waiter(self, request_id: str, predicate: Predicate,
               timeout_s: float | None = None) -> asyncio.Future[Verification | None]:
        """Register before the work starts, then await the future. With `timeout_s` it
        resolves to None once that time has passed (within the sweep interval)."""
        future: asyncio.Future[Verification | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, []).append((predicate, future))
        if timeout_s is not None:
            self._deadlines.append((time.monotonic() + timeout_s, future))
            if self._sweeper is None or self._sweeper.done():
                self._sweeper = asyncio.create_task(self._sweep(), name="bus-sweeper")
        return future

    async def _sweep(self) -> None:
        while self._deadlines:
            await asyncio.sleep(self._sweep_interval_s)
            now = time.monotonic()
            # Deadlines of one wait time arrive in order; a shorter one behind a longer one
            # waits at most for the longer: acceptable for a bounded answer time.
            while self._deadlines and (self._deadlines[0][0] <= now
                                       or self._deadlines[0][1].done()):
                _, future = self._deadlines.popleft()
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    def forget(self, request_id: str, future: asyncio.Future[Verification | None]) -> None:
        waiters = self._waiters.get(request_id)
        if waiters is None:
            return
        waiters[:] = [(p, f) for p, f in waiters if f is not future]
        if not waiters:
            del self._waiters[request_id]
