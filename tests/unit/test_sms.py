"""The segmenter: alphabet choice and part counts, properties checked with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaskad.domain.sms import (
    GSM_CODEC,
    LIMITS,
    Encoding,
    char_units,
    count_parts,
    encoding_for,
    segment,
)

GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
             "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = "^{}\\[~]|€\f"

gsm_text = st.text(alphabet=GSM_BASIC + GSM_EXTENDED, max_size=800)
any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
mixed_text = st.text(alphabet=GSM_BASIC + GSM_EXTENDED + "абвгдеёжз😀𝄞中", max_size=500)


@pytest.mark.parametrize(("text", "parts", "encoding"), [
    ("", 1, Encoding.GSM7),
    ("a" * 160, 1, Encoding.GSM7),
    ("a" * 161, 2, Encoding.GSM7),
    ("a" * 306, 2, Encoding.GSM7),
    ("a" * 307, 3, Encoding.GSM7),
    ("€" * 80, 1, Encoding.GSM7),  # 160 septets: each € is escape + e
    ("€" * 81, 2, Encoding.GSM7),
    ("я" * 70, 1, Encoding.UCS2),
    ("я" * 71, 2, Encoding.UCS2),
    ("я" * 134, 2, Encoding.UCS2),
    ("я" * 135, 3, Encoding.UCS2),
    ("😀" * 35, 1, Encoding.UCS2),  # 70 UTF-16 units
    ("😀" * 36, 2, Encoding.UCS2),
    ("Ваш код: 1234", 1, Encoding.UCS2),
    ("Your code: 1234", 1, Encoding.GSM7),
])
def test_known_counts(text: str, parts: int, encoding: Encoding) -> None:
    seg = segment(text)
    assert (seg.count, seg.encoding) == (parts, encoding)
    assert count_parts(text) == parts


def test_an_escape_is_never_split() -> None:
    text = "a" * 152 + "€" + "b" * 10  # 164 septets; the € would straddle septets 153/154
    seg = segment(text)
    assert seg.parts[0] == "a" * 152 and seg.parts[1].startswith("€")
    assert all(len(p.encode(GSM_CODEC)) <= 153 for p in seg.parts)


@given(mixed_text)
def test_parts_rebuild_the_text(text: str) -> None:
    assert "".join(segment(text).parts) == text


@given(mixed_text)
def test_every_part_fits_and_only_the_last_has_room(text: str) -> None:
    seg = segment(text)
    single, multi = LIMITS[seg.encoding.value]
    sizes = [sum(char_units(c, seg.encoding) for c in p) for p in seg.parts]
    if seg.count == 1:
        assert sizes[0] <= single
        return
    assert all(size <= multi for size in sizes)
    for part, nxt in zip(seg.parts, seg.parts[1:], strict=False):
        # greedy: the next part's first character would not have fitted
        assert sum(char_units(c, seg.encoding) for c in part) + \
            char_units(nxt[0], seg.encoding) > multi


@given(gsm_text)
def test_gsm_text_stays_gsm_and_counts_septets(text: str) -> None:
    seg = segment(text)
    assert seg.encoding is Encoding.GSM7
    assert seg.units == len(text.encode(GSM_CODEC))


@given(any_text)
def test_ucs2_units_are_utf16_code_units(text: str) -> None:
    seg = segment(text)
    if seg.encoding is Encoding.UCS2:
        assert seg.units == len(text.encode("utf-16-be")) // 2
        for payload in seg.payloads():
            payload.decode("utf-16-be")  # no part ends in half a surrogate pair


@given(any_text)
def test_encoding_is_gsm_exactly_when_every_character_has_a_septet(text: str) -> None:
    try:
        text.encode(GSM_CODEC)
        representable = True
    except UnicodeEncodeError:
        representable = False
    assert (encoding_for(text) is Encoding.GSM7) == representable


def test_data_coding() -> None:
    assert Encoding.GSM7.data_coding == 0 and Encoding.UCS2.data_coding == 8
