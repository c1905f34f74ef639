"""The final-state callback body and its signature."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kaskad.domain.callbacks import final_callback_body, new_event_id, sign, verify
from kaskad.domain.clock import seed_date, to_ms
from kaskad.domain.money import parse_rub

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

KEYS = {"request_id", "number", "code", "state", "price", "date"}
DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
PRICE = re.compile(r"^-?\d+\.\d\d$")
ZONES = ["UTC", "Europe/Moscow", "Asia/Vladivostok", "Asia/Kolkata", "America/New_York",
         "Pacific/Chatham", "Australia/Lord_Howe"]
# 2020-02-02 12:18:48 UTC, the seed's example date in Moscow time.
SEED_EXAMPLE_MS = 1580645928000

texts = st.text(max_size=40)
# NUL-free secrets: HMAC pads short keys with zero bytes, so "k" and "k\0" are the same key.
secrets_ = st.text(alphabet=st.characters(exclude_characters="\x00"), min_size=1, max_size=80)
timestamps = st.integers(min_value=0, max_value=2**40)
bodies = st.binary(max_size=300)
epoch_ms = st.integers(min_value=0, max_value=4_102_444_800_000)  # 1970 .. 2100


def body(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = dict(
        request_id="req-1", number="79001234567", code="1234", state="delivered",
        price_kop=150, finished_ms=SEED_EXAMPLE_MS, tz="Europe/Moscow")
    fields.update(overrides)
    return orjson.loads(final_callback_body(**fields))  # type: ignore[arg-type]


# --- the body ---------------------------------------------------------------------------------

def test_final_callback_body_is_exactly_the_seed_fields() -> None:
    assert body() == {
        "request_id": "req-1",
        "number": "79001234567",
        "code": "1234",
        "state": "delivered",
        "price": "1.50",
        "date": "2020-02-02 15:18:48",
    }


def test_final_callback_body_is_json_bytes() -> None:
    raw = final_callback_body(request_id="r", number="n", code="c", state="sms", price_kop=0,
                              finished_ms=0, tz="UTC")
    assert isinstance(raw, bytes)
    assert set(orjson.loads(raw)) == KEYS


@pytest.mark.parametrize(("tz", "date"), [
    ("UTC", "2020-02-02 12:18:48"),
    ("Europe/Moscow", "2020-02-02 15:18:48"),
    ("Asia/Vladivostok", "2020-02-02 22:18:48"),
    ("America/New_York", "2020-02-02 07:18:48"),
])
def test_date_is_in_the_given_time_zone(tz: str, date: str) -> None:
    assert body(tz=tz)["date"] == date


@pytest.mark.parametrize(("kop", "price"), [
    (0, "0.00"), (5, "0.05"), (150, "1.50"), (129, "1.29"), (100000, "1000.00")])
def test_price_is_roubles_with_two_decimals(kop: int, price: str) -> None:
    assert body(price_kop=kop)["price"] == price


def test_date_truncates_milliseconds() -> None:
    assert body(finished_ms=SEED_EXAMPLE_MS + 999, tz="UTC")["date"] == "2020-02-02 12:18:48"


@settings(DETERMINISTIC, max_examples=300)
@given(texts, texts, texts, texts, st.integers(min_value=0, max_value=10**12), epoch_ms,
       st.sampled_from(ZONES))
def test_final_callback_body_properties(request_id: str, number: str, code: str, state: str,
                                        price_kop: int, finished_ms: int, tz: str) -> None:
    got = body(request_id=request_id, number=number, code=code, state=state,
               price_kop=price_kop, finished_ms=finished_ms, tz=tz)
    assert set(got) == KEYS
    assert (got["request_id"], got["number"], got["code"], got["state"]) == (
        request_id, number, code, state)
    assert isinstance(got["price"], str) and PRICE.match(got["price"])
    assert parse_rub(got["price"]) == price_kop
    assert isinstance(got["date"], str) and DATE.match(got["date"])
    expected = datetime.fromtimestamp(finished_ms // 1000, ZoneInfo(tz))
    assert got["date"] == expected.strftime("%Y-%m-%d %H:%M:%S")


# --- clock helpers the body relies on ---------------------------------------------------------

@settings(DETERMINISTIC, max_examples=300)
@given(epoch_ms, st.sampled_from(ZONES))
def test_seed_date_is_the_whole_second_in_the_zone(ms: int, tz: str) -> None:
    text = seed_date(ms, tz)
    local = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    utc = datetime.fromtimestamp(ms // 1000, UTC)
    assert local == utc.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


@DETERMINISTIC
@given(st.integers(min_value=0, max_value=4_102_444_800))
def test_to_ms_of_whole_seconds(seconds: int) -> None:
    assert to_ms(float(seconds)) == seconds * 1000


# --- signatures -------------------------------------------------------------------------------

def test_sign_is_hex_hmac_sha256_of_timestamp_newline_body() -> None:
    expected = hmac.new(b"secret", b"1700000000\n{}", hashlib.sha256).hexdigest()
    assert sign("secret", 1700000000, b"{}") == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)


@settings(DETERMINISTIC, max_examples=300)
@given(secrets_, timestamps, bodies)
def test_sign_then_verify(secret: str, timestamp: int, raw: bytes) -> None:
    signature = sign(secret, timestamp, raw)
    assert re.fullmatch(r"[0-9a-f]{64}", signature)
    assert sign(secret, timestamp, raw) == signature
    assert verify(secret, timestamp, raw, signature)


@DETERMINISTIC
@given(secrets_, timestamps, bodies, bodies)
def test_changed_body_fails(secret: str, timestamp: int, raw: bytes, other: bytes) -> None:
    assume(raw != other)
    assert not verify(secret, timestamp, other, sign(secret, timestamp, raw))


@DETERMINISTIC
@given(secrets_, timestamps, timestamps, bodies)
def test_changed_timestamp_fails(secret: str, timestamp: int, other: int, raw: bytes) -> None:
    assume(timestamp != other)
    assert not verify(secret, other, raw, sign(secret, timestamp, raw))


@DETERMINISTIC
@given(secrets_, secrets_, timestamps, bodies)
def test_changed_secret_fails(secret: str, other: str, timestamp: int, raw: bytes) -> None:
    assume(secret != other)
    assert not verify(other, timestamp, raw, sign(secret, timestamp, raw))


@DETERMINISTIC
@given(secrets_, timestamps, bodies, st.integers(min_value=0, max_value=63), st.data())
def test_changed_signature_fails(secret: str, timestamp: int, raw: bytes, position: int,
                                 data: st.DataObject) -> None:
    signature = sign(secret, timestamp, raw)
    replacement = data.draw(st.sampled_from("0123456789abcdef").filter(
        lambda c: c != signature[position]))
    tampered = signature[:position] + replacement + signature[position + 1:]
    assert not verify(secret, timestamp, raw, tampered)
    assert not verify(secret, timestamp, raw, signature[:position])
    assert not verify(secret, timestamp, raw, signature + "0")


def test_moving_bytes_between_timestamp_and_body_fails() -> None:
    signature = sign("s", 12, b"3\n{}")
    assert not verify("s", 123, b"\n{}", signature)


@pytest.mark.parametrize("signature", ["", "é" * 64, "х" * 64, "\u2028"])
def test_verify_rejects_garbage_signatures_without_raising(signature: str) -> None:
    # A verifier's answer to a forged signature is False, whatever characters it holds.
    assert verify("secret", 1, b"{}", signature) is False


# --- event ids --------------------------------------------------------------------------------

def test_new_event_id_is_a_fresh_uuid7() -> None:
    ids = {new_event_id() for _ in range(100)}
    assert len(ids) == 100
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == event_id


@given(st.integers(min_value=0, max_value=2**48 - 2))
def test_event_ids_sort_by_their_millisecond(ms: int) -> None:
    earlier, later = new_event_id(ms), new_event_id(ms + 1)
    assert earlier < later
    assert int(uuid.UUID(earlier).hex[:12], 16) == ms
