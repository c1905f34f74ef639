"""The writer's hand-over of new outbox rows to this node's sender (Transitions._hand_over)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from kaskad.storage import batch
from kaskad.storage.outbox import OutboxEntry
from kaskad.storage.verifications import Transitions


class Sink:
    lease_s = 15.0

    def __init__(self, room: int) -> None:
        self._room = room
        self.handed: list[OutboxEntry] = []
        self.woken = 0

    def room(self) -> int:
        return self._room

    def deliver_now(self, entries: Sequence[OutboxEntry]) -> None:
        self.handed.extend(entries)

    def wake(self) -> None:
        self.woken += 1


def _rows(n: int) -> list[dict[str, Any]]:
    return [dict(event_id=f"e{i}", account_id=7, request_id=f"r{i}", method="POST",
                 url="https://customer.example/hook", body="{}", attempts=0,
                 next_attempt_at=1_000, created_at=1_000) for i in range(n)]


def _hand_over(room: int, rows: list[dict[str, Any]]) -> tuple[Sink, list[Any]]:
    t = Transitions(SimpleNamespace(is_sqlite=True), None, (0, 0.0),  # type: ignore[arg-type]
                    lambda v: None, "node", 30.0)
    sink = Sink(room)
    t.outbox = sink
    actions: list[Any] = []
    batch._after_commit.set(actions)
    t._hand_over(rows)
    return sink, actions


def test_rows_are_leased_and_handed_over_only_at_commit() -> None:
    rows = _rows(3)
    sink, actions = _hand_over(10, rows)
    assert [r["lease_until"] for r in rows] == [16_000] * 3
    assert sink.handed == []  # nothing before COMMIT
    for action in actions:
        action()
    assert [e.event_id for e in sink.handed] == ["e0", "e1", "e2"] and sink.woken == 0
    assert all(e.secret is None and e.attempts == 0 for e in sink.handed)


def test_rows_beyond_the_senders_room_stay_unleased_for_the_poll() -> None:
    rows = _rows(3)
    sink, actions = _hand_over(1, rows)
    assert [r["lease_until"] for r in rows] == [16_000, None, None]
    assert all(set(r) == set(rows[0]) for r in rows)  # one insert statement takes them all
    for action in actions:
        action()
    assert [e.event_id for e in sink.handed] == ["e0"] and sink.woken == 1


def test_a_sender_that_is_not_running_takes_nothing() -> None:
    rows = _rows(2)
    sink, actions = _hand_over(0, rows)
    for action in actions:
        action()
    assert sink.handed == [] and sink.woken == 1
    assert [r["lease_until"] for r in rows] == [None, None]
