"""Time is injected: production uses the wall clock, tests pass their own."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

Clock = Callable[[], float]  # seconds since the epoch


def system_clock() -> float:
    return time.time()


def to_ms(seconds: float) -> int:
    return int(seconds * 1000)


def seed_date(ms: int, tz: str) -> str:
    """The seed's `date` format: "2020-02-02 15:18:48" in the operator's time zone."""
    return _seed_second(ms // 1000, tz)


@lru_cache(maxsize=1024)
def _seed_second(second: int, tz: str) -> str:
    # Every callback and report formats a time, nearly always one of the last few seconds.
    return datetime.fromtimestamp(second, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")
