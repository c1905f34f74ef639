"""Time is injected: production uses the wall clock, tests pass their own."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], float]  # seconds since the epoch


def system_clock() -> float:
    return time.time()


def to_ms(seconds: float) -> int:
    return int(seconds * 1000)


def seed_date(ms: int, tz: str) -> str:
    """The seed's `date` format: "2020-02-02 15:18:48" in the operator's time zone."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")
