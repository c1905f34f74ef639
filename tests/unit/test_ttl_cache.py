"""services.ttl_cache: one load per key at a time, refresh ahead, never older than the TTL."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaskad.services.ttl_cache import TtlCache

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=200)


class Source:
    """What the cache reads: a value per key that changes when told, loads that can be held."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.version = 0
        self.loads = 0
        self.gate: asyncio.Event | None = None  # set: loads wait for it
        self.fail = False

    def clock(self) -> float:
        return self.now

    async def load(self, key: str) -> tuple[str, int, float]:
        self.loads += 1
        began = self.now
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("database away")
        return key, self.version, began


async def _settle() -> None:
    """Let started loads finish and their results be kept (a few turns of the loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_that_miss_together_share_one_load() -> None:
    src = Source()
    src.gate = asyncio.Event()
    cache = TtlCache(src.load, src.clock, 2.0)
    waiting = [asyncio.ensure_future(cache.get("k")) for _ in range(50)]
    await asyncio.sleep(0)
    src.gate.set()
    results = await asyncio.gather(*waiting)
    assert src.loads == 1 and len(set(results)) == 1


async def test_an_entry_near_its_end_is_reloaded_in_the_background() -> None:
    src = Source()
    cache = TtlCache(src.load, src.clock, 2.0)
    first = await cache.get("k")
    src.version, src.now = 1, src.now + 1.6  # in the last quarter of its life
    src.gate = asyncio.Event()
    assert await cache.get("k") == first  # served at once, not waiting for the reload
    assert await cache.get("k") == first
    await _settle()
    assert src.loads == 2  # one reload under way, not one per use
    src.gate.set()
    await _settle()
    assert (await cache.get("k"))[1] == 1 and src.loads == 2


async def test_an_expired_entry_is_never_served() -> None:
    src = Source()
    cache = TtlCache(src.load, src.clock, 2.0)
    await cache.get("k")
    src.version, src.now = 1, src.now + 2.0
    assert (await cache.get("k"))[1] == 1


async def test_invalidate_drops_the_entry_and_a_load_already_under_way() -> None:
    src = Source()
    cache = TtlCache(src.load, src.clock, 60.0)
    await cache.get("k")
    src.now += 50  # refresh ahead begins, and is held
    src.gate = asyncio.Event()
    await cache.get("k")
    src.version = 1
    cache.invalidate()
    src.gate.set()
    await _settle()
    assert (await cache.get("k"))[1] == 1


async def test_a_failed_load_fails_its_callers_and_the_next_use_tries_again() -> None:
    src = Source()
    src.fail = True
    cache = TtlCache(src.load, src.clock, 2.0)
    with pytest.raises(ConnectionError):
        await cache.get("k")
    src.fail = False
    assert (await cache.get("k"))[0] == "k" and src.loads == 2


async def test_a_zero_ttl_reads_every_time() -> None:
    src = Source()
    cache = TtlCache(src.load, src.clock, 0.0)
    for i in range(3):
        src.version = i
        assert (await cache.get("k"))[1] == i
    assert src.loads == 3


@DETERMINISTIC
@given(st.lists(st.tuples(st.floats(min_value=0, max_value=3), st.booleans(),
                          st.sampled_from("ab")), max_size=40),
       st.floats(min_value=0.1, max_value=5))
def test_no_value_older_than_the_ttl_is_served(steps: list[tuple[float, bool, str]],
                                               ttl: float) -> None:
    async def run() -> None:
        src = Source()
        cache = TtlCache(src.load, src.clock, ttl)
        for advance, change, key in steps:
            src.now += advance
            if change:
                src.version += 1
            _, _, began = await cache.get(key)
            assert src.now - began < ttl or began == src.now
            await _settle()  # background reloads complete between requests

    asyncio.run(run())
