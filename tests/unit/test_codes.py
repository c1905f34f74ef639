"""Verification codes: generated as ASCII digits, and validated strictly against the length."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaskad.domain import codes
from kaskad.domain.codes import (
    DEFAULT_CODE_LENGTH,
    MAX_CODE_LENGTH,
    MIN_CODE_LENGTH,
    generate_code,
    parse_code,
    parse_code_length,
)
from kaskad.domain.errors import (
    CodeLengthMismatch,
    CodeLengthNotPermitted,
    CodeNotCorrect,
    KaskadError,
)

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

LENGTHS = range(MIN_CODE_LENGTH, MAX_CODE_LENGTH + 1)
lengths = st.integers(min_value=MIN_CODE_LENGTH, max_value=MAX_CODE_LENGTH)
bad_lengths = st.integers().filter(lambda n: n not in LENGTHS)
non_ascii_digits = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())


def test_length_bounds() -> None:
    assert (MIN_CODE_LENGTH, MAX_CODE_LENGTH, DEFAULT_CODE_LENGTH) == (4, 8, 4)


def test_errors_carry_their_wire_codes() -> None:
    assert issubclass(CodeLengthNotPermitted, KaskadError)
    assert CodeLengthNotPermitted.code == "code_length_not_permitted"
    assert CodeNotCorrect.code == "code_not_correct"
    assert CodeLengthMismatch.code == "code_length_error"


# --- generate_code ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", LENGTHS)
def test_generate_code_is_length_ascii_digits(length: int) -> None:
    for _ in range(200):
        code = generate_code(length)
        assert len(code) == length
        assert code.isascii() and code.isdigit()
        assert set(code) <= set(string.digits)
        assert parse_code(code, length) == code


@pytest.mark.parametrize("length", LENGTHS)
def test_generate_code_keeps_leading_zeros(length: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes.secrets, "randbelow", lambda n: 7)
    assert generate_code(length) == "0" * (length - 1) + "7"


@pytest.mark.parametrize("length", LENGTHS)
def test_generate_code_draws_from_the_whole_range(length: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bounds: list[int] = []

    def fake_randbelow(n: int) -> int:
        bounds.append(n)
        return n - 1

    monkeypatch.setattr(codes.secrets, "randbelow", fake_randbelow)
    assert generate_code(length) == "9" * length
    assert bounds == [10**length]


def test_generate_code_varies() -> None:
    assert len({generate_code(8) for _ in range(50)}) > 1


@DETERMINISTIC
@given(bad_lengths)
def test_generate_code_rejects_other_lengths(length: int) -> None:
    with pytest.raises(CodeLengthNotPermitted):
        generate_code(length)


# --- parse_code_length ------------------------------------------------------------------------

def test_parse_code_length_defaults_to_four() -> None:
    assert parse_code_length(None) == DEFAULT_CODE_LENGTH == 4


@pytest.mark.parametrize("length", LENGTHS)
def test_parse_code_length_accepts_ints_and_digit_strings(length: int) -> None:
    assert parse_code_length(length) == length
    assert parse_code_length(str(length)) == length


@pytest.mark.parametrize("raw", [
    True, False, 4.0, 5.5, "4.0", "", " ", "3", "9", "-4", "+4", "4a", "four", "0x4", "1e1",
    3, 9, 0, -4, -1, 10**20, "٤", "４", "𝟒", "⁴", b"4", [4], {"code_length": 4}, object(),
])
def test_parse_code_length_rejects(raw: object) -> None:
    with pytest.raises(CodeLengthNotPermitted):
        parse_code_length(raw)


@DETERMINISTIC
@given(bad_lengths)
def test_parse_code_length_rejects_any_other_integer(n: int) -> None:
    with pytest.raises(CodeLengthNotPermitted):
        parse_code_length(n)
    with pytest.raises(CodeLengthNotPermitted):
        parse_code_length(str(n))


@DETERMINISTIC
@given(st.text())
def test_parse_code_length_on_any_text_is_4_to_8_or_refused(raw: str) -> None:
    try:
        value = parse_code_length(raw)
    except CodeLengthNotPermitted:
        return
    assert value in LENGTHS
    assert raw.strip().isascii() and raw.strip().isdigit()
    assert int(raw.strip()) == value


# --- parse_code -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [None, ""])
def test_parse_code_absent_means_generate(raw: object) -> None:
    assert parse_code(raw, 4) is None


@DETERMINISTIC
@given(st.data(), lengths)
def test_parse_code_accepts_exact_length_digit_strings(data: st.DataObject, length: int) -> None:
    code = data.draw(st.text(alphabet=string.digits, min_size=length, max_size=length))
    assert parse_code(code, length) == code


@DETERMINISTIC
@given(st.data(), lengths)
def test_parse_code_accepts_exact_length_ints(data: st.DataObject, length: int) -> None:
    code = data.draw(st.integers(min_value=10 ** (length - 1), max_value=10**length - 1))
    assert parse_code(code, length) == str(code)


def test_parse_code_examples() -> None:
    assert parse_code("0042", 4) == "0042"
    assert parse_code(1234, 4) == "1234"
    assert parse_code("12345678", 8) == "12345678"


@pytest.mark.parametrize("raw", [
    "١٢٣٤",  # Arabic-Indic digits
    "۱۲۳۴",  # Extended Arabic-Indic digits
    "１２３４",  # fullwidth digits
    "१२३४",  # Devanagari digits
    "𝟏𝟐𝟑𝟒",  # mathematical bold digits
    "¹²³⁴",  # superscripts: str.isdigit() is True for these
    "12a4", "12 34", "12-34", "-123", "+1234", "1.23", "12.0", "abcd", " ", "\t",
    True, False, -1234, -1, 12.34, 1234.0, b"1234", ["1234"], {"code": "1234"},
])
def test_parse_code_rejects_anything_but_ascii_digits(raw: object) -> None:
    with pytest.raises(CodeNotCorrect):
        parse_code(raw, 4)


@DETERMINISTIC
@given(st.data(), lengths)
def test_parse_code_rejects_unicode_digits_of_the_right_length(data: st.DataObject,
                                                               length: int) -> None:
    code = data.draw(st.text(alphabet=non_ascii_digits, min_size=length, max_size=length))
    with pytest.raises(CodeNotCorrect):
        parse_code(code, length)


@DETERMINISTIC
@given(st.text(min_size=1).filter(lambda s: not (s.strip().isascii() and s.strip().isdigit())),
       lengths)
def test_parse_code_rejects_any_non_digit_text(raw: str, length: int) -> None:
    with pytest.raises(CodeNotCorrect):
        parse_code(raw, length)


@DETERMINISTIC
@given(st.text(alphabet=string.digits, min_size=1, max_size=20), lengths)
def test_parse_code_digits_of_another_length_mismatch(code: str, length: int) -> None:
    if len(code) == length:
        assert parse_code(code, length) == code
    else:
        with pytest.raises(CodeLengthMismatch):
            parse_code(code, length)


@DETERMINISTIC
@given(st.integers(min_value=0, max_value=10**20), lengths)
def test_parse_code_ints_of_another_length_mismatch(code: int, length: int) -> None:
    if len(str(code)) == length:
        assert parse_code(code, length) == str(code)
    else:
        with pytest.raises(CodeLengthMismatch):
            parse_code(code, length)
