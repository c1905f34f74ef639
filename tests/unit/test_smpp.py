"""kaskad.domain.smpp: the submit_sm we write, read back by smpp34's decoder (a codec that
shares nothing with ours), and the status classification."""

from __future__ import annotations

import pytest
import smpp34
from hypothesis import given
from hypothesis import strategies as st

from kaskad.domain.smpp import (
    SUBMIT_SM,
    SubmitVerdict,
    classify_status,
    pdu,
    status_name,
    submit_sm_body,
)

addresses = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@given(source=addresses, destination=addresses, ton=st.integers(0, 6), npi=st.integers(0, 18),
       esm_class=st.sampled_from([0, 0x40]), registered=st.integers(0, 1),
       data_coding=st.sampled_from([0, 8]), message=st.binary(max_size=254),
       sequence=st.integers(1, 0x7FFFFFFF))
def test_every_field_reads_back_with_an_independent_decoder(
        source: str, destination: str, ton: int, npi: int, esm_class: int, registered: int,
        data_coding: int, message: bytes, sequence: int) -> None:
    body = submit_sm_body(source=source, source_ton=ton, source_npi=npi,
                          destination=destination, dest_ton=npi % 7, dest_npi=ton,
                          esm_class=esm_class, registered_delivery=registered,
                          data_coding=data_coding, short_message=message)
    raw = pdu(SUBMIT_SM, sequence, body)
    assert int.from_bytes(raw[:4], "big") == len(raw)
    decoded = smpp34.decode(raw)
    assert isinstance(decoded, smpp34.SubmitSm)
    assert decoded.sequence_number == sequence
    assert (decoded.source_addr, decoded.destination_addr) == (source, destination)
    assert (decoded.source_addr_ton, decoded.source_addr_npi) == (ton, npi)
    assert (decoded.dest_addr_ton, decoded.dest_addr_npi) == (npi % 7, ton)
    assert (decoded.esm_class, decoded.registered_delivery) == (esm_class, registered)
    assert decoded.data_coding == data_coding
    assert bytes(decoded.short_message) == message
    assert decoded.service_type == "" and not decoded.tlvs
    assert (decoded.protocol_id, decoded.priority_flag) == (0, 0)
    assert decoded.replace_if_present_flag == 0
    assert decoded.schedule_delivery_time == "" and decoded.validity_period == ""


def test_the_same_octets_as_aiosmpplib_writes() -> None:
    """Our connector's PDUs were aiosmpplib's before; the SMSC must see no difference."""
    from aiosmpplib import NPI, TON, PhoneNumber, SubmitSm

    text = "Ваш код: 1234".encode("utf-16-be")
    theirs = SubmitSm(short_message="-", log_id="x", source=PhoneNumber("Kaskad", TON(5), NPI(0)),
                      destination=PhoneNumber("79001234567", TON(1), NPI(1)), esm_class=0,
                      registered_delivery=1, encoding="ucs2")
    theirs.set_encoded_message(text)
    theirs.sequence_num = 42
    ours = pdu(SUBMIT_SM, 42, submit_sm_body(
        source="Kaskad", source_ton=5, source_npi=0, destination="79001234567", dest_ton=1,
        dest_npi=1, esm_class=0, registered_delivery=1, data_coding=8, short_message=text))
    assert ours == theirs.pdu()


@pytest.mark.parametrize("field, value", [("source", "x" * 21), ("destination", "7" * 21),
                                          ("source", "Каскад"), ("destination", "7900\0")])
def test_an_address_smpp_cannot_carry_is_refused(field: str, value: str) -> None:
    args = {"source": "Kaskad", "destination": "79001234567", field: value}
    with pytest.raises(ValueError):
        submit_sm_body(**args, source_ton=5, source_npi=0, dest_ton=1, dest_npi=1,
                       esm_class=0, registered_delivery=1, data_coding=0, short_message=b"x")


def test_a_message_over_254_octets_is_refused() -> None:
    with pytest.raises(ValueError):
        submit_sm_body(source="Kaskad", source_ton=5, source_npi=0, destination="79001234567",
                       dest_ton=1, dest_npi=1, esm_class=0, registered_delivery=1,
                       data_coding=0, short_message=b"x" * 255)


def test_statuses() -> None:
    assert classify_status(0) is SubmitVerdict.ACCEPTED
    assert classify_status(0x58) is SubmitVerdict.THROTTLED
    assert classify_status(0x0B) is SubmitVerdict.PERMANENT
    assert classify_status(0x08) is SubmitVerdict.TEMPORARY
    assert classify_status(0x401) is SubmitVerdict.TEMPORARY  # vendor-specific
    assert status_name(0x03) == "ESME_RINVCMDID" and status_name(0x401) == "0x00000401"
