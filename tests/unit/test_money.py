"""Money at the edges: kopecks render as "1.29" and parse back exactly, with no float."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaskad.domain.money import format_rub, parse_rub

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

LIMIT = 10**14  # parse_rub takes up to twelve digits of roubles
kopecks = st.integers(min_value=-(LIMIT - 1), max_value=LIMIT - 1)
FORMATTED = re.compile(r"^-?(0|[1-9]\d*)\.\d\d$")


@pytest.mark.parametrize(("kop", "text"), [
    (0, "0.00"), (1, "0.01"), (5, "0.05"), (10, "0.10"), (99, "0.99"), (100, "1.00"),
    (129, "1.29"), (150, "1.50"), (1250, "12.50"), (123456, "1234.56"),
    (-5, "-0.05"), (-129, "-1.29"), (-100, "-1.00"),
])
def test_format_rub_examples(kop: int, text: str) -> None:
    assert format_rub(kop) == text


@pytest.mark.parametrize(("text", "kop"), [
    ("12", 1200), ("12.5", 1250), ("12,5", 1250), ("12.50", 1250), ("12,50", 1250),
    ("12.05", 1205), ("0.05", 5), ("0,5", 50), ("0", 0), ("0.00", 0), ("-0.00", 0),
    ("-1.29", -129), ("-1", -100), (" 3 ", 300), ("007", 700),
    ("999999999999.99", 99_999_999_999_999),
])
def test_parse_rub_examples(text: str, kop: int) -> None:
    assert parse_rub(text) == kop


@pytest.mark.parametrize("text", [
    "1.234", "abc", "", " ", "1.", ".5", ",5", "+1", "--1", "- 1", "1,2,3", "1.2.3",
    "1e3", "1 000", "1_000", "1.-5", "12руб", "₽12", "nan", "inf",
    "1234567890123",  # thirteen digits of roubles
])
def test_parse_rub_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rub(text)


@pytest.mark.parametrize("text", [
    "١٢",  # Arabic-Indic digits
    "１２,５",  # fullwidth digits
    "१२.५०",  # Devanagari digits
])
def test_parse_rub_rejects_non_ascii_digits(text: str) -> None:
    # Amounts are typed by operators at the CLI; only ASCII digits are an amount, as everywhere
    # else kaskad validates input (codes, phone numbers).
    with pytest.raises(ValueError):
        parse_rub(text)


@settings(DETERMINISTIC, max_examples=500)
@given(kopecks)
def test_format_then_parse_round_trips(kop: int) -> None:
    text = format_rub(kop)
    assert FORMATTED.match(text), text
    assert parse_rub(text) == kop
    assert parse_rub(text.replace(".", ",")) == kop


@DETERMINISTIC
@given(st.integers(min_value=0, max_value=10**12 - 1), st.integers(min_value=0, max_value=99),
       st.booleans())
def test_parse_rub_reads_roubles_and_kopecks(rub: int, kop: int, negative: bool) -> None:
    sign = "-" if negative else ""
    expected = (rub * 100 + kop) * (-1 if negative else 1)
    assert parse_rub(f"{sign}{rub}.{kop:02d}") == expected
    assert parse_rub(f"{sign}{rub},{kop:02d}") == expected
    if kop % 10 == 0:
        assert parse_rub(f"{sign}{rub}.{kop // 10}") == expected  # "12.5" is 12.50
    if kop == 0:
        assert parse_rub(f"{sign}{rub}") == expected


@DETERMINISTIC
@given(kopecks)
def test_format_rub_is_exact_for_large_amounts(kop: int) -> None:
    # No float on the way: the digits are exactly the integer's.
    text = format_rub(kop)
    assert text.lstrip("-").replace(".", "").lstrip("0") == str(abs(kop)).lstrip("0")
