"""The form parser equals urllib's parse_qsl on what form encoders send."""

from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from kaskad.api.forms import parse_form

ASCII_BODY = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=6))
def test_encoded_pairs_round_trip(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode()
    assert parse_form(body) == parse_qsl(body.decode(), keep_blank_values=True)


@given(ASCII_BODY)
def test_any_ascii_body_parses_as_urllib_does(body: str) -> None:
    """Malformed escapes, lone percent signs, backslashes, empty pairs, missing '='."""
    assert parse_form(body.encode()) == parse_qsl(body, keep_blank_values=True)


def test_cases() -> None:
    assert parse_form(b"a=1&&b=&c&d=%D0%9F%d1%80+x") == [
        ("a", "1"), ("b", ""), ("c", ""), ("d", "Пр x")]
    assert parse_form(b"t=%zz%4\\x41%") == [("t", "%zz%4\\x41%")]
    assert parse_form(b"t=%FF") == [("t", "\ufffd")]
