"""Phone numbers: every notation of a number normalises to the same E.164 digits and country."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaskad.domain.errors import KaskadError, NumberEmpty, NumberNotValid
from kaskad.domain.numbers import PhoneNumber, clean_digits, parse_number

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

MOSCOW_MOBILE = PhoneNumber(digits="79001234567", country="RU")


def example_numbers() -> list[tuple[str, str]]:
    """(E.164, region) for libphonenumber's example mobile and fixed-line number of every region.

    These are real, valid numbers written in international notation, so kaskad must keep them
    exactly as they are.
    """
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None or phonenumbers.region_code_for_number(example) != region:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            if 7 <= len(e164) - 1 <= 15:
                found.append((e164, region))
    return found


EXAMPLES = example_numbers()


def test_example_numbers_cover_the_world() -> None:
    assert len(EXAMPLES) > 400
    assert {"RU", "KZ", "US", "VN", "JP"} <= {region for _, region in EXAMPLES}


# --- Russian notations ------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "+7 (900) 123-45-67",
    "+79001234567",
    "89001234567",
    "8 (900) 123-45-67",
    "8-900-123-45-67",
    "79001234567",
    "9001234567",
    "900 123 45 67",
    "007 900 123 45 67",
    "0079001234567",
    "+7.900.123.45.67",
    "  +7 900 123 45 67  ",
    "+7\u00a0900\u00a0123\u00a045\u00a067",  # no-break spaces, as pasted from documents
    79001234567,
    89001234567,
    9001234567,
])
def test_notations_of_one_russian_number_agree(raw: object) -> None:
    number = parse_number(raw)
    assert number == MOSCOW_MOBILE
    assert number.e164 == "+79001234567"
    assert number.direction == "RU"


def test_clean_digits_examples() -> None:
    assert clean_digits("+7 (900) 123-45-67") == "79001234567"
    assert clean_digits("89001234567") == "79001234567"
    assert clean_digits("9001234567") == "79001234567"
    assert clean_digits("00441234567890") == "441234567890"


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    None, True, False, "", " ", "\t\n", "abc", "+7 900 abc 45 67", "7900123456x",
    "+", "00", "++79001234567", "+-", "()", "---",
    "123456",  # too short: six digits
    "+123456",
    "1234567890123456",  # too long: sixteen digits
    "+1234567890123456",
    "+7 (900) 123 - 45 - 67 - - - - - - - -",  # separators past the input limit
    "7 9 0 0 1 2 3 4 5 6 7 " * 3,
    "٧٩٠٠١٢٣٤٥٦٧",  # Arabic-Indic digits
    "７９００１２３４５６７",  # fullwidth digits
    "+7 900 123 45 67 ext. 5",
    "+7/900/1234567",
    79001234567.0, 3.14, b"79001234567", ["79001234567"], {"number": "79001234567"},
    object(),
])
def test_garbage_is_an_empty_number(raw: object) -> None:
    with pytest.raises(NumberEmpty):
        parse_number(raw)


@pytest.mark.parametrize("raw", [
    "70000000000", "+7 000 000 00 00", "80000000000", "+1234567", "1234567",
    "+0000000", "+999123456789", "123456789012345",
])
def test_well_formed_but_invalid_numbers_are_not_valid(raw: str) -> None:
    with pytest.raises(NumberNotValid):
        parse_number(raw)


@pytest.mark.parametrize("raw", [
    "79300000000", "+7 930 003 34 26", "79300060000", "79300380000", "79300650000",
    "79300810000",
])
def test_unallocated_russian_mobile_ranges_are_not_valid(raw: str) -> None:
    # libphonenumber has no +7 930 000..004, 006..009, 038..039, 065..068, 081..083 blocks.
    assert not phonenumbers.is_valid_number(phonenumbers.parse("+" + raw.lstrip("+")))
    with pytest.raises(NumberNotValid):
        parse_number(raw)


def test_russian_mobiles_agree_with_libphonenumber() -> None:
    """Sweep +7 9XX YY0-00-00: parse_number accepts exactly what libphonenumber calls valid."""
    disagree = []
    for code in range(900, 1000):
        for block in range(100):
            digits = f"7{code}{block:02d}00000"
            valid = phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
            got = outcome(digits)
            if valid != isinstance(got, PhoneNumber) or (valid and got != PhoneNumber(
                    digits=digits, country="RU")):
                disagree.append(f"{digits}: libphonenumber valid={valid}, parse_number={got}")
    assert not disagree, "\n".join(disagree)


def test_number_errors_carry_their_wire_codes() -> None:
    assert issubclass(NumberEmpty, KaskadError)
    assert issubclass(NumberNotValid, KaskadError)
    assert NumberEmpty.code == "number_is_empty"
    assert NumberNotValid.code == "number_not_valid"


# --- foreign numbers --------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "digits", "country"), [
    ("77012345678", "77012345678", "KZ"),  # Kazakhstan shares +7 with Russia
    ("+7 701 234 56 78", "77012345678", "KZ"),
    ("87012345678", "77012345678", "KZ"),  # Kazakhstan also dials the 8 trunk prefix
    ("+1 202 456 1111", "12024561111", "US"),
    ("12024561111", "12024561111", "US"),
    ("+44 20 7946 0958", "442079460958", "GB"),
    ("+49 30 1234567", "49301234567", "DE"),
    ("+375 29 123 45 67", "375291234567", "BY"),
    ("00998 90 123 45 67", "998901234567", "UZ"),
])
def test_foreign_numbers_get_their_region(raw: str, digits: str, country: str) -> None:
    assert parse_number(raw) == PhoneNumber(digits=digits, country=country)


@pytest.mark.parametrize(("raw", "digits", "country"), [
    ("+84 91 234 56 78", "84912345678", "VN"),  # Vietnamese mobile: 11 digits after "+8"
    ("0084912345678", "84912345678", "VN"),
    ("+81 3-1234-5678", "81312345678", "JP"),  # Tokyo landline
    ("+852 5123 4567", "85251234567", "HK"),
    ("+960 771 2345", "9607712345", "MV"),  # Maldivian mobile: 10 digits after "+9"
    ("+961 1 123 456", "9611123456", "LB"),
])
def test_explicit_international_prefix_is_never_reinterpreted_as_russian(
        raw: str, digits: str, country: str) -> None:
    # "+" or "00" says the country code follows, so the Russian "8 trunk prefix" and
    # "bare 9xx mobile" shortcuts must not apply.
    assert parse_number(raw) == PhoneNumber(digits=digits, country=country)


def test_every_regions_example_numbers_parse_to_themselves() -> None:
    wrong = []
    for e164, region in EXAMPLES:
        for raw in (e164, "00" + e164[1:]):
            try:
                got = parse_number(raw)
            except KaskadError as exc:
                wrong.append(f"{raw} ({region}) -> {type(exc).__name__}")
                continue
            if got != PhoneNumber(digits=e164[1:], country=region):
                wrong.append(f"{raw} ({region}) -> {got.digits} ({got.country})")
    assert not wrong, "international numbers misparsed:\n" + "\n".join(wrong)


# --- properties -------------------------------------------------------------------------------

russian_mobiles = st.text(alphabet="0123456789", min_size=9, max_size=9).map(lambda s: "9" + s)
digit_strings = st.text(alphabet="0123456789", min_size=7, max_size=15)
separators = st.sampled_from(["", " ", "-", ".", "(", ")", "  "])


@st.composite
def notated(draw: st.DrawFn, digits: str) -> str:
    """`digits` with random separators between them."""
    return "".join(c + draw(separators) for c in digits).strip()


def outcome(raw: object) -> PhoneNumber | type[KaskadError]:
    try:
        return parse_number(raw)
    except (NumberEmpty, NumberNotValid) as exc:
        return type(exc)


@settings(DETERMINISTIC, max_examples=200)
@given(russian_mobiles, st.data())
def test_all_notations_of_a_russian_mobile_agree(national: str, data: st.DataObject) -> None:
    notations = [
        "+7" + national, "8" + national, "7" + national, national, "007" + national,
        "+7 (" + national[:3] + ") " + national[3:6] + "-" + national[6:8] + "-" + national[8:],
        data.draw(notated("+7" + national)),
        int("7" + national), int("8" + national), int(national),
    ]
    results = {repr(outcome(raw)) for raw in notations}
    assert len(results) == 1, dict(zip(map(repr, notations), map(outcome, notations),
                                       strict=True))
    result = outcome(notations[0])
    if isinstance(result, PhoneNumber):
        assert result.digits == "7" + national
        assert result.country == "RU"


@settings(DETERMINISTIC, max_examples=200)
@given(st.one_of(digit_strings, digit_strings.map(lambda d: "+" + d),
                 digit_strings.map(lambda d: "00" + d), russian_mobiles,
                 st.sampled_from([e for e, _ in EXAMPLES])))
def test_parsed_numbers_round_trip(raw: str) -> None:
    try:
        number = parse_number(raw)
    except (NumberEmpty, NumberNotValid):
        return
    assert number.digits.isascii() and number.digits.isdigit()
    assert 7 <= len(number.digits) <= 15
    assert number.digits[0] != "0"
    assert len(number.country) == 2 and number.country.isupper()
    assert parse_number("+" + number.digits) == number
    assert parse_number(number.e164) == number
    assert parse_number("00" + number.digits) == number
    parsed = phonenumbers.parse(number.e164, None)
    assert phonenumbers.is_valid_number(parsed)
    assert phonenumbers.region_code_for_number(parsed) == number.country


@DETERMINISTIC
@given(st.text(max_size=40))
def test_parse_number_never_fails_with_anything_but_its_own_errors(raw: str) -> None:
    result = outcome(raw)
    if isinstance(result, PhoneNumber):
        assert parse_number(result.e164) == result
