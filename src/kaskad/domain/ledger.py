"""Ledger rules: holds on send, capture on delivery, release otherwise; never below zero.

An account's `balance` is money it owns; `held` is reserved for verifications in flight.
Available = balance - held. These pure functions are what the storage layer does in SQL,
and the property tests check the invariants on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kaskad.domain.errors import NotEnoughMoney


class EntryKind(StrEnum):
    TOPUP = "topup"  # balance += amount (amount may be negative for a correction)
    HOLD = "hold"  # held += amount
    CAPTURE = "capture"  # balance -= amount, held -= amount
    RELEASE = "release"  # held -= amount


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    held: int

    @property
    def available(self) -> int:
        return self.balance - self.held


def apply(b: Balance, kind: EntryKind, amount: int) -> Balance:
    """The effect of one ledger entry; raises instead of letting money go negative."""
    if kind is EntryKind.TOPUP:
        if b.available + amount < 0:
            raise NotEnoughMoney("correction below zero")
        return Balance(b.balance + amount, b.held)
    if amount < 0:
        raise ValueError("hold, capture and release amounts are never negative")
    if kind is EntryKind.HOLD:
        if amount > b.available:
            raise NotEnoughMoney()
        return Balance(b.balance, b.held + amount)
    if amount > b.held:
        raise ValueError(f"{kind} of {amount} exceeds held {b.held}")
    if kind is EntryKind.CAPTURE:
        return Balance(b.balance - amount, b.held - amount)
    return Balance(b.balance, b.held - amount)


def settle(held: int, charged: int) -> tuple[int, int]:
    """Split a verification's hold into (capture, release) once its final state is known."""
    if not 0 <= charged <= held:
        raise ValueError(f"charge {charged} outside hold {held}")
    return charged, held - charged


def hold_for(prices: list[int]) -> int:
    """A verification holds the dearest step of its cascade, so no step can overdraw."""
    return max(prices) if prices else 0
