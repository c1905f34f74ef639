"""The overview's numbers and chart series, computed from the account's own traffic and its
tariff plan. Pure functions over the aggregates that storage.cabinet returns."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kaskad.domain.cascade import FINAL_STATES
from kaskad.storage.cabinet import DAY_MS

CHANNEL_ORDER = ("telegram", "sms", "voice", "flash_call", "incoming_call")
COLOURS = {"telegram": "#229ED9", "sms": "#6c5ce7", "voice": "#00b894",
           "flash_call": "#fdcb6e", "incoming_call": "#e17055", "none": "#b2bec3"}
FINAL = {s.value for s in FINAL_STATES}


@dataclass
class Overview:
    days: list[int]
    labels: list[str]
    by_channel: dict[str, list[int]] = field(default_factory=dict)
    rate: list[float | None] = field(default_factory=list)
    median_s: list[float | None] = field(default_factory=list)
    saved_kop: list[int] = field(default_factory=list)
    total: int = 0
    delivered: int = 0
    finished: int = 0
    median_all_s: float | None = None
    saved_total_kop: int = 0

    @property
    def rate_all(self) -> float | None:
        return None if not self.finished else round(100 * self.delivered / self.finished, 1)

    def chart_data(self, names: dict[str, str]) -> dict[str, object]:
        """What static/cabinet.js hands to Chart.js (names: localised channel names)."""
        return {
            "labels": self.labels,
            "channels": [{"label": names[c], "data": self.by_channel[c], "color": COLOURS[c]}
                         for c in (*CHANNEL_ORDER, "none") if any(self.by_channel.get(c, []))],
            "rate": self.rate, "median": self.median_s,
            "saved": [round(k / 100, 2) for k in self.saved_kop],
        }


def day_range(today: int, count: int, offset_ms: int) -> tuple[list[int], list[str]]:
    days = list(range(today - count + 1, today + 1))
    labels = [datetime.fromtimestamp((d * DAY_MS - offset_ms + DAY_MS // 2) / 1000, UTC)
              .strftime("%d.%m") for d in days]
    return days, labels


def build(days: list[int], labels: list[str],
          per_day: list[tuple[int, str | None, str, int]],
          times: list[tuple[int, int]],
          charges: list[tuple[int, str, int, int, int]],
          sms_price: Callable[[str], int | None]) -> Overview:
    """Fill the day slots; days with no traffic read as zero (or as a gap for ratios)."""
    index = {d: i for i, d in enumerate(days)}
    o = Overview(days, labels)
    o.by_channel = {c: [0] * len(days) for c in (*CHANNEL_ORDER, "none")}
    finished, delivered = [0] * len(days), [0] * len(days)
    for day, channel, state, count in per_day:
        i = index.get(day)
        if i is None:
            continue
        o.by_channel.setdefault(channel or "none", [0] * len(days))[i] += count
        o.total += count
        if state in FINAL:
            finished[i] += count
            if channel:
                delivered[i] += count
    o.finished, o.delivered = sum(finished), sum(delivered)
    o.rate = [round(100 * d / f, 1) if f else None for d, f in zip(delivered, finished,
                                                                      strict=True)]
    o.median_s, o.median_all_s = _medians(times, index, len(days))
    o.saved_kop = _savings(charges, index, len(days), sms_price)
    o.saved_total_kop = sum(o.saved_kop)
    return o


def _medians(times: list[tuple[int, int]], index: dict[int, int],
             count: int) -> tuple[list[float | None], float | None]:
    buckets: dict[int, list[int]] = defaultdict(list)
    for day, ms in times:
        if day in index:
            buckets[index[day]].append(ms)
    per_day = [round(statistics.median(buckets[i]) / 1000, 2) if buckets.get(i) else None
               for i in range(count)]
    every = [ms for values in buckets.values() for ms in values]
    return per_day, (round(statistics.median(every) / 1000, 2) if every else None)


def _savings(charges: list[tuple[int, str, int, int, int]], index: dict[int, int],
             count: int, sms_price: Callable[[str], int | None]) -> list[int]:
    """Per delivered request: its direction's SMS price (times its parts) minus what it was
    charged. Directions without an SMS price count as no saving (not as a guess)."""
    saved = [0] * count
    for day, direction, parts, delivered, charged in charges:
        i = index.get(day)
        price = sms_price(direction)
        if i is None or price is None:
            continue
        saved[i] += price * max(parts, 1) * delivered - charged
    return saved
