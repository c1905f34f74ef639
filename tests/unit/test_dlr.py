"""Delivery receipts: both forms, the states' mappings, and id readings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaskad.domain.channels import Outcome
from kaskad.domain.dlr import (
    SSMS_STATE_TEXT,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    MessageState,
    format_receipt,
    matching_id,
    message_outcome,
    parse_receipt_text,
    receipt_from_pdu,
)

KANNEL_STYLE = ("id:0123456789 sub:001 dlvrd:001 submit date:2511231405 done date:2511231406 "
                "stat:DELIVRD err:000 text:Ваш код 1234")


def test_the_text_form() -> None:
    r = parse_receipt_text(KANNEL_STYLE)
    assert r is not None
    assert (r.message_id, r.state, r.error) == ("0123456789", MessageState.DELIVERED, "000")
    assert (r.submitted, r.done) == ("2511231405", "2511231406")


def test_text_after_text_colon_cannot_fake_fields() -> None:
    r = parse_receipt_text("id:42 stat:UNDELIV err:001 text:stat:DELIVRD id:99")
    assert r is not None and (r.message_id, r.state) == ("42", MessageState.UNDELIVERABLE)


@pytest.mark.parametrize("text", ["", "hello", "id: stat:DELIVRD", "id:5 stat:WHATEVER",
                                  "Ваш код 1234"])
def test_not_receipts(text: str) -> None:
    assert parse_receipt_text(text) is None


def test_tlvs_win_over_the_text() -> None:
    r = receipt_from_pdu({TLV_RECEIPTED_MESSAGE_ID: b"ab12\x00", TLV_MESSAGE_STATE: bytes([5])},
                         KANNEL_STYLE.encode())
    assert r is not None and (r.message_id, r.state) == ("ab12", MessageState.UNDELIVERABLE)
    assert r.error == "000"  # what the TLVs lack comes from the text


def test_tlvs_alone_and_bad_tlvs() -> None:
    r = receipt_from_pdu({TLV_RECEIPTED_MESSAGE_ID: b"77", TLV_MESSAGE_STATE: bytes([2])}, b"")
    assert r is not None and r.state is MessageState.DELIVERED
    assert receipt_from_pdu({TLV_MESSAGE_STATE: bytes([99])}, b"") is None
    assert receipt_from_pdu({}, b"\xff\xfe") is None


def test_state_mappings() -> None:
    assert MessageState.DELIVERED.outcome is Outcome.DELIVERED
    assert MessageState.ENROUTE.outcome is None and MessageState.ACCEPTED.outcome is None
    for state in (MessageState.EXPIRED, MessageState.DELETED, MessageState.UNDELIVERABLE,
                  MessageState.UNKNOWN, MessageState.REJECTED):
        assert state.outcome is Outcome.NOT_DELIVERED
    assert MessageState.DELIVERED.ssms_state == 1
    assert MessageState.EXPIRED.ssms_state == 34 and MessageState.REJECTED.ssms_state == 16
    assert all(s.ssms_state in SSMS_STATE_TEXT for s in MessageState)


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=16),
       st.sampled_from(list(MessageState)), st.text(max_size=40))
def test_format_then_parse_round_trips(message_id: str, state: MessageState, text: str) -> None:
    raw = format_receipt(message_id, state, submitted="2511231405", done="2511231406",
                         text=text)
    r = parse_receipt_text(raw)
    assert r is not None and (r.message_id, r.state) == (message_id, state)


def test_matching_id_brings_both_bases_to_one_form() -> None:
    # "decimal": hex in submit_sm_resp, decimal in receipts; "hex": the reverse
    assert matching_id("FF", "decimal", in_receipt=False) == "255"
    assert matching_id("0ff", "decimal", in_receipt=False) == "255"
    assert matching_id("255", "decimal", in_receipt=True) == "255"
    assert matching_id("255", "hex", in_receipt=False) == "255"
    assert matching_id("ff", "hex", in_receipt=True) == "255"
    assert matching_id("Ab12", "same", in_receipt=True) == "Ab12"
    assert matching_id("msg-1", "decimal", in_receipt=True) == "msg-1"  # not a number: as is


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_matching_id_agrees_across_bases(value: int) -> None:
    for resp, receipt, form in ((format(value, "X"), str(value), "decimal"),
                                (str(value), format(value, "x"), "hex")):
        assert (matching_id(resp, form, in_receipt=False)
                == matching_id(receipt, form, in_receipt=True))


def test_field_names_are_whole_words() -> None:
    r = parse_receipt_text("paid:1 id:7 stat:DELIVRD")
    assert r is not None and r.message_id == "7"


_PART = st.sampled_from([None, Outcome.DELIVERED, Outcome.NOT_DELIVERED])


@given(st.lists(_PART, min_size=1, max_size=10))
def test_a_long_message_is_delivered_only_when_every_part_is(parts: list[Outcome | None]) -> None:
    outcome = message_outcome(parts)
    if Outcome.NOT_DELIVERED in parts:
        assert outcome is Outcome.NOT_DELIVERED
    elif None in parts:
        assert outcome is None  # still on its way
    else:
        assert outcome is Outcome.DELIVERED


@given(st.lists(_PART, min_size=1, max_size=10), st.randoms())
def test_a_long_message_outcome_does_not_depend_on_the_order_of_receipts(
        parts: list[Outcome | None], rnd: Any) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    assert message_outcome(shuffled) is message_outcome(parts)
