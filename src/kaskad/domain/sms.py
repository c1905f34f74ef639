"""SMS text: the alphabet a text needs and the parts it takes, by our own segmenter.

GSM 03.38 (the default alphabet plus its extension table, via the `gsm0338` codec) when every
character has a septet, else UCS-2. One part holds 160 septets or 70 UTF-16 units; a
concatenated part loses 7 septets / 3 units to its UDH, so holds 153 or 67. An escaped character
(extension table: two septets) is never split across parts, nor is a UTF-16 surrogate pair (a
character outside the BMP counts as two units). The same count bills the message (`n_raw_sms`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

GSM_CODEC = "gsm03.38"
LIMITS = {"gsm7": (160, 153), "ucs2": (70, 67)}  # (single part, each concatenated part)
MAX_PARTS = 255  # the UDH's part counter is one octet


class Encoding(StrEnum):
    GSM7 = "gsm7"  # SMPP data_coding 0x00 (SMSC default alphabet)
    UCS2 = "ucs2"  # SMPP data_coding 0x08

    @property
    def data_coding(self) -> int:
        return 0x00 if self is Encoding.GSM7 else 0x08


@dataclass(frozen=True, slots=True)
class Segmented:
    encoding: Encoding
    parts: tuple[str, ...]  # the text of each part; "".join(parts) is the whole text
    units: int  # septets (GSM) or UTF-16 code units (UCS-2) of the whole text

    @property
    def count(self) -> int:
        return len(self.parts)

    def payloads(self) -> list[bytes]:
        """Each part's short_message bytes: unpacked septets (GSM) or UTF-16-BE (UCS-2)."""
        return [encode_part(p, self.encoding) for p in self.parts]


def char_units(ch: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return len(ch.encode(GSM_CODEC))
    return 2 if ord(ch) > 0xFFFF else 1


def encoding_for(text: str) -> Encoding:
    try:
        text.encode(GSM_CODEC)
    except UnicodeEncodeError:
        return Encoding.UCS2
    return Encoding.GSM7


def encode_part(text: str, encoding: Encoding) -> bytes:
    if encoding is Encoding.GSM7:
        return text.encode(GSM_CODEC)
    return text.encode("utf-16-be")


@lru_cache(maxsize=4096)
def segment(text: str) -> Segmented:
    """Split `text` into as few parts as its alphabet allows (greedy fill is optimal here:
    every character costs the same wherever it lands). Cached: a gateway sends the same
    templates over and over, and the per-character walk was a tenth of an SMS's CPU."""
    try:
        encoding, total = Encoding.GSM7, len(text.encode(GSM_CODEC))  # escapes: 2 septets
    except UnicodeEncodeError:
        encoding, total = Encoding.UCS2, len(text.encode("utf-16-be")) // 2
    single, multi = LIMITS[encoding.value]
    if total <= single:
        return Segmented(encoding, (text,) if text else ("",), total)
    costs = [char_units(ch, encoding) for ch in text]
    parts: list[str] = []
    start, used = 0, 0
    for index, cost in enumerate(costs):
        if used + cost > multi:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return Segmented(encoding, tuple(parts), total)


def count_parts(text: str) -> int:
    """n_raw_sms: what the message costs in parts."""
    return segment(text).count


def decode_payload(data: bytes, data_coding: int) -> str:
    """A received short_message's text (MO messages, receipts' texts); undecodable bytes become
    U+FFFD rather than failing: what the phone sent is kept as well as it can be read."""
    if data_coding == 0x00:
        return data.decode(GSM_CODEC, errors="replace")
    if data_coding == 0x08:
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")
