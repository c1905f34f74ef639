"""The DEF/ABC registry: parsing, operator keys and lookups."""

from __future__ import annotations

from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaskad.domain.errors import BadRequest
from kaskad.domain.numbering import HEADER, NumberingPlan, NumberRange, parse_registry

SAMPLE = files("kaskad").joinpath("data/numbering_sample.csv").read_text("utf-8")
HEAD = "\ufeff" + ";".join(HEADER) + "\n"


def _operator(plan: NumberingPlan, number: str) -> str | None:
    found = plan.lookup(number)
    return None if found is None else found.operator


def test_the_shipped_sample_parses_with_its_bom() -> None:
    plan = NumberingPlan(parse_registry(SAMPLE))
    assert len(plan) == 10
    mts = plan.lookup("79161234567")
    assert mts is not None and mts.operator == "mts" and mts.inn == "7740000076"
    assert "Москва" in mts.region
    assert _operator(plan, "+79261234567") == "megafon"
    assert _operator(plan, "79001234560") == "mts"  # the sandbox numbers
    assert _operator(plan, "79000123456") == "tele2"
    assert _operator(plan, "79581234567") is None  # before the 958 range
    assert _operator(plan, "79585000000") == "inn:7701725181"
    assert _operator(plan, "79999999999") is None
    assert _operator(plan, "not a number") is None


@pytest.mark.parametrize(("body", "problem"), [
    ("900;1;2;2;X;R;T\n", "8 columns"),
    ("9000;1;2;2;X;R;T;1\n", "3 digits"),
    ("900;5;2;2;X;R;T;1\n", "ends before"),
    ("900;a;2;2;X;R;T;1\n", "3 digits"),
    ("900;1;2;2;X;R;T;12a\n", "INN"),
])
def test_malformed_rows_name_their_line(body: str, problem: str) -> None:
    with pytest.raises(BadRequest, match=f"line 2: .*{problem}"):
        list(parse_registry(HEAD + body))


def test_a_file_that_is_not_the_registry_is_refused() -> None:
    with pytest.raises(BadRequest, match="header"):
        list(parse_registry("a;b;c\n1;2;3\n"))


def test_overlaps_are_refused() -> None:
    text = HEAD + "900;0;100;101;A;R;T;1\n900;50;200;151;B;R;T;2\n"
    with pytest.raises(BadRequest, match="overlapping"):
        NumberingPlan(parse_registry(text))


@st.composite
def plans(draw: st.DrawFn) -> list[NumberRange]:
    cuts = sorted(draw(st.sets(st.integers(0, 10**7 - 1), min_size=2, max_size=60)))
    return [NumberRange(79000000000 + low, 79000000000 + high, f"op{low}", "", "", "")
            for low, high in zip(cuts[::2], cuts[1::2], strict=False)]


@given(plans(), st.integers(79000000000 - 5, 79010000000 + 5))
def test_lookup_agrees_with_a_linear_scan(ranges: list[NumberRange], number: int) -> None:
    plan = NumberingPlan(reversed(ranges))  # any order in, sorted inside
    expected = next((r for r in ranges if r.start <= number <= r.end), None)
    assert plan.lookup(str(number)) == expected


def test_directions_from_the_plan_and_their_fallbacks() -> None:
    from kaskad.domain.numbering import (
        detailed_direction,
        direction_candidates,
        direction_matches,
    )

    plan = NumberingPlan(parse_registry(SAMPLE))
    assert detailed_direction("RU", "79161234567", plan) == "RU:mts"
    assert detailed_direction("RU", "79581234567", plan) == "RU"  # not in the plan
    assert detailed_direction("KZ", "77011234567", plan) == "KZ"
    assert direction_candidates("RU:mts") == ("RU:mts", "RU", "*")
    assert direction_candidates("RU") == ("RU", "*")
    assert direction_matches(["RU"], "RU:mts") and direction_matches(["*"], "KZ")
    assert direction_matches(["RU:mts"], "RU:mts") and not direction_matches(["RU:mts"], "RU")
    assert not direction_matches(["RU:megafon"], "RU:mts")


def test_tariffs_prefer_the_operator_then_the_country() -> None:
    from kaskad.storage.accounts import price_in

    table = {("p", "sms", "RU:mts"): 290, ("p", "sms", "RU"): 350, ("p", "sms", "*"): 500}
    assert price_in(table, "p", "sms", "RU:mts") == 290
    assert price_in(table, "p", "sms", "RU:megafon") == 350
    assert price_in(table, "p", "sms", "KZ") == 500
    assert price_in(table, "p", "voice", "RU:mts") is None
