"""Money is integer kopecks everywhere; strings like "1.29" exist only at the edges."""

from __future__ import annotations

import re

Kopecks = int

_AMOUNT = re.compile(r"^(?P<neg>-)?(?P<rub>\d{1,12})(?:[.,](?P<kop>\d{1,2}))?$", re.ASCII)


def format_rub(kop: Kopecks) -> str:
    """Render kopecks the way the seed APIs print prices: "1.29", "0.00"."""
    sign = "-" if kop < 0 else ""
    kop = abs(kop)
    return f"{sign}{kop // 100}.{kop % 100:02d}"


def parse_rub(text: str) -> Kopecks:
    """Parse "12", "12.5" or "12,50" roubles into kopecks exactly (no float on the way)."""
    m = _AMOUNT.match(text.strip())
    if not m:
        raise ValueError(f"not an amount of roubles: {text!r}")
    kop = int(m["rub"]) * 100 + int((m["kop"] or "0").ljust(2, "0"))
    return -kop if m["neg"] else kop
