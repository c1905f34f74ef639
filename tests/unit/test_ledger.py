"""Ledger rules: no sequence of entries takes money below zero, and the sums always agree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaskad.domain.errors import KaskadError, NotEnoughMoney
from kaskad.domain.ledger import Balance, EntryKind, apply, hold_for, settle

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

amounts = st.integers(min_value=-10_000, max_value=10_000)
kinds = st.sampled_from(list(EntryKind))
entries = st.lists(st.tuples(kinds, amounts), max_size=60)
valid_balances = st.builds(
    lambda held, spare: Balance(held + spare, held),
    st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
"""Balances the ledger can reach: held >= 0 and available >= 0."""


def expected_error(b: Balance, kind: EntryKind, amount: int) -> type[Exception] | None:
    """The model of which entries the ledger must refuse, and with what."""
    if kind is EntryKind.TOPUP:
        return NotEnoughMoney if b.available + amount < 0 else None
    if amount < 0:
        return ValueError
    if kind is EntryKind.HOLD:
        return NotEnoughMoney if amount > b.available else None
    return ValueError if amount > b.held else None


def assert_sound(b: Balance) -> None:
    assert b.held >= 0
    assert b.available >= 0
    assert b.balance >= 0
    assert b.available == b.balance - b.held


# --- examples ---------------------------------------------------------------------------------

def test_entry_kinds_are_the_stored_words() -> None:
    assert {k.value for k in EntryKind} == {"topup", "hold", "capture", "release"}


def test_available_is_balance_minus_held() -> None:
    assert Balance(1000, 250).available == 750


def test_hold_capture_release_lifecycle() -> None:
    b = apply(Balance(0, 0), EntryKind.TOPUP, 1000)
    assert b == Balance(1000, 0)
    b = apply(b, EntryKind.HOLD, 300)
    assert b == Balance(1000, 300)
    b = apply(b, EntryKind.CAPTURE, 200)
    assert b == Balance(800, 100)
    b = apply(b, EntryKind.RELEASE, 100)
    assert b == Balance(800, 0)


def test_hold_of_exactly_the_available_money_is_allowed() -> None:
    assert apply(Balance(500, 200), EntryKind.HOLD, 300) == Balance(500, 500)


def test_hold_beyond_available_is_not_enough_money() -> None:
    with pytest.raises(NotEnoughMoney):
        apply(Balance(500, 200), EntryKind.HOLD, 301)


def test_not_enough_money_is_a_kaskad_error_with_its_wire_code() -> None:
    with pytest.raises(KaskadError) as info:
        apply(Balance(0, 0), EntryKind.HOLD, 1)
    assert info.value.code == "not_enough_money"


def test_negative_topup_is_a_correction_but_never_below_available() -> None:
    assert apply(Balance(500, 200), EntryKind.TOPUP, -300) == Balance(200, 200)
    with pytest.raises(NotEnoughMoney):
        apply(Balance(500, 200), EntryKind.TOPUP, -301)


@pytest.mark.parametrize("kind", [EntryKind.CAPTURE, EntryKind.RELEASE])
def test_capture_or_release_beyond_held_is_refused(kind: EntryKind) -> None:
    with pytest.raises(ValueError):
        apply(Balance(1000, 100), kind, 101)


@pytest.mark.parametrize("kind", [EntryKind.HOLD, EntryKind.CAPTURE, EntryKind.RELEASE])
def test_negative_amounts_are_refused_for_all_but_topups(kind: EntryKind) -> None:
    with pytest.raises(ValueError):
        apply(Balance(1000, 100), kind, -1)


@pytest.mark.parametrize("kind", list(EntryKind))
def test_zero_amounts_change_nothing(kind: EntryKind) -> None:
    assert apply(Balance(1000, 100), kind, 0) == Balance(1000, 100)


def test_balance_is_immutable() -> None:
    b = Balance(10, 5)
    with pytest.raises(AttributeError):
        b.balance = 0  # type: ignore[misc]


# --- properties -------------------------------------------------------------------------------

@DETERMINISTIC
@given(valid_balances, kinds, amounts)
def test_apply_refuses_exactly_the_entries_that_would_overdraw(b: Balance, kind: EntryKind,
                                                               amount: int) -> None:
    error = expected_error(b, kind, amount)
    if error is None:
        after = apply(b, kind, amount)
        assert_sound(after)
    else:
        with pytest.raises(error):
            apply(b, kind, amount)
        assert_sound(b)


@settings(DETERMINISTIC, max_examples=200)
@given(entries)
def test_random_entry_sequences_keep_the_ledger_sound_and_summed(
        ops: list[tuple[EntryKind, int]]) -> None:
    b = Balance(0, 0)
    sums = dict.fromkeys(EntryKind, 0)
    for kind, amount in ops:
        before = b
        error = expected_error(b, kind, amount)
        try:
            b = apply(b, kind, amount)
        except (NotEnoughMoney, ValueError) as exc:
            assert error is not None and isinstance(exc, error), (kind, amount, before)
            assert b == before
            # The refused entry left the previous balance usable: it still takes a valid entry.
            assert apply(b, EntryKind.HOLD, b.available) == Balance(b.balance, b.balance)
            continue
        assert error is None, f"{kind} of {amount} on {before} should have been refused"
        sums[kind] += amount
        assert_sound(b)
        assert b.balance == sums[EntryKind.TOPUP] - sums[EntryKind.CAPTURE]
        assert b.held == (sums[EntryKind.HOLD] - sums[EntryKind.CAPTURE]
                          - sums[EntryKind.RELEASE])


@DETERMINISTIC
@given(valid_balances, st.lists(st.integers(min_value=0, max_value=10_000), max_size=4),
       st.data())
def test_verification_round_trip_charges_at_most_its_hold(
        start: Balance, prices: list[int], data: st.DataObject) -> None:
    hold = hold_for(prices)
    if hold > start.available:
        with pytest.raises(NotEnoughMoney):
            apply(start, EntryKind.HOLD, hold)
        return
    held = apply(start, EntryKind.HOLD, hold)
    charged = data.draw(st.sampled_from([0, *prices]))
    capture, release = settle(hold, charged)
    done = apply(apply(held, EntryKind.CAPTURE, capture), EntryKind.RELEASE, release)
    assert done == Balance(start.balance - charged, start.held)
    assert_sound(done)


# --- settle and hold_for ----------------------------------------------------------------------

@DETERMINISTIC
@given(st.integers(min_value=0, max_value=10**12), st.data())
def test_settle_splits_the_hold(held: int, data: st.DataObject) -> None:
    charged = data.draw(st.integers(min_value=0, max_value=held))
    capture, release = settle(held, charged)
    assert capture == charged
    assert release == held - charged
    assert capture + release == held
    assert capture >= 0 and release >= 0


@DETERMINISTIC
@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=10**12))
def test_settle_refuses_charges_outside_the_hold(held: int, excess: int) -> None:
    with pytest.raises(ValueError):
        settle(held, held + excess)
    with pytest.raises(ValueError):
        settle(held, -excess)


def test_settle_examples() -> None:
    assert settle(150, 150) == (150, 0)
    assert settle(150, 0) == (0, 150)
    assert settle(0, 0) == (0, 0)
    assert settle(300, 129) == (129, 171)
    with pytest.raises(ValueError):
        settle(-1, 0)


def test_hold_for_examples() -> None:
    assert hold_for([]) == 0
    assert hold_for([150]) == 150
    assert hold_for([150, 300, 200]) == 300


@DETERMINISTIC
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1))
def test_hold_for_is_the_dearest_step(prices: list[int]) -> None:
    hold = hold_for(prices)
    assert hold == max(prices)
    assert hold in prices
    assert all(hold >= p for p in prices)
