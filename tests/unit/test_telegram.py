"""The Telegram Gateway's pure rules: report signatures, limits, errors, statuses, money."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaskad.domain.channels import Outcome
from kaskad.domain.telegram import (
    ErrorKind,
    ParamError,
    ReportCheck,
    check_report,
    classify_error,
    outcome_of_status,
    send_params,
    sign_report,
    usd_to_micros,
)

NOW = 1_800_000_000


def test_signature_matches_the_documented_construction() -> None:
    token, body = "12345:secret", b'{"request_id":"x"}'
    key = hashlib.sha256(token.encode()).digest()
    expected = hmac.new(key, b"1800000000\n" + body, hashlib.sha256).hexdigest()
    assert sign_report(token, NOW, body) == expected


@given(token=st.text(min_size=1), body=st.binary(), skew=st.integers(-300, 300))
def test_a_signed_fresh_report_is_accepted(token: str, body: bytes, skew: int) -> None:
    stamp = str(NOW + skew)
    assert check_report(token, stamp, sign_report(token, stamp, body), body, NOW) is ReportCheck.OK


@given(token=st.text(min_size=1), body=st.binary(), extra=st.binary(min_size=1))
def test_a_changed_body_is_refused(token: str, body: bytes, extra: bytes) -> None:
    stamp = str(NOW)
    sig = sign_report(token, stamp, body)
    assert check_report(token, stamp, sig, body + extra, NOW) is ReportCheck.BAD_SIGNATURE


@given(token=st.text(min_size=1), other=st.text(min_size=1), body=st.binary())
def test_another_key_is_refused(token: str, other: str, body: bytes) -> None:
    stamp = str(NOW)
    verdict = check_report(token, stamp, sign_report(other, stamp, body), body, NOW)
    assert verdict is (ReportCheck.OK if token == other else ReportCheck.BAD_SIGNATURE)


@pytest.mark.parametrize(("stamp", "verdict"), [
    (str(NOW - 301), ReportCheck.STALE), (str(NOW + 301), ReportCheck.STALE),
    ("", ReportCheck.MISSING), ("-5", ReportCheck.BAD_TIMESTAMP),
    ("1e9", ReportCheck.BAD_TIMESTAMP), ("٣٣٣", ReportCheck.BAD_TIMESTAMP),
])
def test_bad_timestamps(stamp: str, verdict: ReportCheck) -> None:
    body = b"{}"
    assert check_report("t", stamp, sign_report("t", stamp, body), body, NOW) is verdict


@given(st.text(), st.text())
def test_arbitrary_headers_never_crash(stamp: str, sig: str) -> None:
    assert isinstance(check_report("t", stamp, sig, b"{}", NOW), ReportCheck)


@given(st.text())
def test_every_error_string_is_classified(error: str) -> None:
    assert classify_error(error).outcome in (Outcome.REJECTED_PERMANENT,
                                             Outcome.REJECTED_TEMPORARY)


@pytest.mark.parametrize(("error", "kind", "wait"), [
    ("FLOOD_WAIT_17", ErrorKind.FLOOD, 17), ("PHONE_NUMBER_NOT_FOUND", ErrorKind.NO_TELEGRAM, 0),
    ("ACCESS_TOKEN_INVALID", ErrorKind.CONFIG, 0), ("SENDER_NOT_OWNED", ErrorKind.CONFIG, 0),
    ("BALANCE_NOT_ENOUGH", ErrorKind.CONFIG, 0), ("TTL_INVALID", ErrorKind.BAD_REQUEST, 0),
    ("INTERNAL_ERROR", ErrorKind.TEMPORARY, 0), ("NEVER_SEEN", ErrorKind.UNKNOWN, 0),
    ("FLOOD_WAIT_", ErrorKind.UNKNOWN, 0),
])
def test_known_errors(error: str, kind: ErrorKind, wait: int) -> None:
    c = classify_error(error)
    assert (c.kind, c.wait_s) == (kind, wait)


def test_statuses_map_onto_outcomes() -> None:
    assert outcome_of_status("delivered") is Outcome.DELIVERED
    assert outcome_of_status("read") is Outcome.DELIVERED
    assert outcome_of_status("expired") is Outcome.NOT_DELIVERED
    assert outcome_of_status("revoked") is Outcome.NOT_DELIVERED
    assert outcome_of_status("sent") is None and outcome_of_status("weird") is None


@given(cents=st.integers(0, 10**9))
def test_cost_is_exact_integer_micros(cents: int) -> None:
    assert usd_to_micros(Decimal(cents) / 100) == cents * 10_000


@pytest.mark.parametrize("value", [None, True, -1, "abc", float("nan"), Decimal("-0.5"), [1]])
def test_nonsense_costs_are_zero(value: object) -> None:
    assert usd_to_micros(value) == 0


@given(code=st.from_regex(r"[0-9]{4,8}", fullmatch=True), ttl=st.integers(30, 3600),
       payload=st.text(max_size=32))
def test_valid_parameters_pass(code: str, ttl: int, payload: str) -> None:
    params = send_params(phone="79001234567", code=code, ttl=ttl, payload=payload or None)
    assert params["phone_number"] == "+79001234567" and params["code"] == code


@given(code=st.text().filter(lambda c: not (c.isascii() and c.isdigit() and 4 <= len(c) <= 8)))
def test_invalid_codes_are_refused(code: str) -> None:
    with pytest.raises(ParamError):
        send_params(phone="79001234567", code=code)


@pytest.mark.parametrize("phone", ["", "+", "0123456", "7" * 16, "+7 900", "abc"])
def test_invalid_phones_are_refused(phone: str) -> None:
    with pytest.raises(ParamError):
        send_params(phone=phone, code="1234")
