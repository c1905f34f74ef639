"""In-process notice board of state changes, so an API call can await its verification's next
state instead of polling the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kaskad.storage.verifications import Verification

Predicate = Callable[[Verification], bool]


class StateBus:
    def __init__(self) -> None:
        self._waiters: dict[str, list[tuple[Predicate, asyncio.Future[Verification]]]] = {}
        self._listeners: list[Callable[[Verification], None]] = []

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

    def waiter(self, request_id: str, predicate: Predicate) -> asyncio.Future[Verification]:
        """Register before the work starts, then await the future (with a timeout)."""
        future: asyncio.Future[Verification] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request_id, []).append((predicate, future))
        return future

    def forget(self, request_id: str, future: asyncio.Future[Verification]) -> None:
        waiters = self._waiters.get(request_id)
        if waiters is None:
            return
        waiters[:] = [(p, f) for p, f in waiters if f is not future]
        if not waiters:
            del self._waiters[request_id]
