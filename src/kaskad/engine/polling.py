"""The loop shared by everything that claims work from the database: run a round, go again at
once while rounds come back full, else sleep until woken or the poll interval passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


async def poll_forever(round_: Callable[[], Awaitable[int]], *, wake: asyncio.Event,
                       interval_s: float, full: int, what: str) -> None:
    while True:
        try:
            done = await round_()
        except Exception as exc:  # the database may be briefly away; keep going
            log.warning(f"{what} failed", error=repr(exc))
            done = 0
        if done >= full:
            continue
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), interval_s)
        except TimeoutError:
            pass
