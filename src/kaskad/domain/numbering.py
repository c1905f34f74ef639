"""Russia's numbering plan: which operator holds a number, from the ministry's DEF/ABC registry.

phonenumbers' Russian operator data is incomplete and numbers move between operators, so the
official registry is loaded instead: a CSV (UTF-8 with BOM, `;`-separated) with the columns
`АВС/ DEF;От;До;Емкость;Оператор;Регион;Территория ГАР;ИНН`. Each row is a range of ten-digit
national numbers; we keep them as integer ranges of full E.164 numbers (7 + code + number) and
find a number's range by binary search.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kaskad.domain.errors import BadRequest

HEADER = ("АВС/ DEF", "От", "До", "Емкость", "Оператор", "Регион", "Территория ГАР", "ИНН")
# Short, stable names for the big four (by INN, which survives renames); others are "inn:<INN>".
KNOWN_OPERATORS = {
    "7740000076": "mts",
    "7812014560": "megafon",
    "7713076301": "beeline",
    "7743895280": "tele2",
}
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class NumberRange:
    start: int  # E.164 as an integer, e.g. 79000000000
    end: int  # inclusive
    operator: str  # short key: "mts", "inn:7707049388"
    operator_name: str  # as the registry writes it
    region: str
    inn: str


def operator_key(inn: str, name: str) -> str:
    if inn in KNOWN_OPERATORS:
        return KNOWN_OPERATORS[inn]
    if inn:
        return f"inn:{inn}"
    return "name:" + re.sub(r"\s+", " ", name).strip().lower()


def parse_registry(text: str) -> Iterator[NumberRange]:
    """The rows of a registry file; a malformed row is a BadRequest naming its line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";")
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header[:8]) != HEADER:
        raise BadRequest(f"not a DEF/ABC registry: the header must be {';'.join(HEADER)}")
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        yield _range(row, line)


def _range(row: list[str], line: int) -> NumberRange:
    if len(row) < 8:
        raise BadRequest(f"line {line}: expected 8 columns, got {len(row)}")
    code, low, high = (cell.strip() for cell in row[:3])
    name, region, inn = row[4].strip(), row[5].strip(), row[7].strip()
    if not all(_DIGITS.fullmatch(v) for v in (code, low, high)) or len(code) != 3 \
            or len(low) > 7 or len(high) > 7:
        raise BadRequest(f"line {line}: code must be 3 digits and the range up to 7 digits")
    start, end = int(f"7{code}{low.zfill(7)}"), int(f"7{code}{high.zfill(7)}")
    if end < start:
        raise BadRequest(f"line {line}: the range ends before it starts")
    if inn and not _DIGITS.fullmatch(inn):
        raise BadRequest(f"line {line}: INN must be digits")
    return NumberRange(start, end, operator_key(inn, name), name, region, inn)


class NumberingPlan:
    """Sorted, non-overlapping ranges; `lookup` is O(log n)."""

    def __init__(self, ranges: Iterable[NumberRange]) -> None:
        ordered = sorted(ranges, key=lambda r: r.start)
        for before, after in itertools.pairwise(ordered):
            if after.start <= before.end:
                raise BadRequest(f"overlapping ranges: {before.start}-{before.end} and "
                                 f"{after.start}-{after.end}")
        self.ranges = ordered
        self._starts = [r.start for r in ordered]

    def __len__(self) -> int:
        return len(self.ranges)

    def lookup(self, number: str) -> NumberRange | None:
        """The range holding an E.164 number ("79161234567" or "+7916..."), if any."""
        digits = number.lstrip("+")
        if not digits.isascii() or not digits.isdigit():
            return None
        value = int(digits)
        index = bisect.bisect_right(self._starts, value) - 1
        if index < 0:
            return None
        found = self.ranges[index]
        return found if found.start <= value <= found.end else None


def detailed_direction(country: str, digits: str, plan: NumberingPlan | None) -> str:
    """"RU:mts" when the plan knows a Russian number's operator, else the country alone."""
    if country != "RU" or plan is None:
        return country
    found = plan.lookup(digits)
    return f"RU:{found.operator}" if found is not None else country


def direction_candidates(direction: str) -> tuple[str, ...]:
    """Most specific first: "RU:mts" -> ("RU:mts", "RU", "*")."""
    country, _, operator = direction.partition(":")
    return (direction, country, "*") if operator else (direction, "*")


def direction_matches(allowed: Iterable[str], direction: str) -> bool:
    """Whether a list of directions ("*", "RU", "RU:mts") covers `direction`."""
    return bool(set(direction_candidates(direction)) & set(allowed))


def normalize_direction(direction: str) -> str:
    """"ru:MTS" -> "RU:mts": countries are upper case, operator keys lower case."""
    country, sep, operator = direction.strip().partition(":")
    return country.upper() + (sep + operator.lower() if sep else "")
