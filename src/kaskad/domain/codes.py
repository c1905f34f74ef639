"""Verification codes: generated with a CSPRNG, validated against the requested length."""

from __future__ import annotations

import secrets

from kaskad.domain.errors import CodeLengthMismatch, CodeLengthNotPermitted, CodeNotCorrect

MIN_CODE_LENGTH = 4
MAX_CODE_LENGTH = 8
DEFAULT_CODE_LENGTH = 4


def generate_code(length: int) -> str:
    """A uniformly random string of `length` decimal digits (leading zeros allowed)."""
    if not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH:
        raise CodeLengthNotPermitted(str(length))
    return f"{secrets.randbelow(10**length):0{length}d}"


def parse_code_length(raw: object) -> int:
    """Accept 4..8 as an int or a digit string ("4"); everything else is not permitted."""
    if raw is None:
        return DEFAULT_CODE_LENGTH
    if isinstance(raw, bool):
        raise CodeLengthNotPermitted(repr(raw))
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        raise CodeLengthNotPermitted(repr(raw))
    if not MIN_CODE_LENGTH <= value <= MAX_CODE_LENGTH:
        raise CodeLengthNotPermitted(str(value))
    return value


def parse_code(raw: object, length: int) -> str | None:
    """Validate a customer-supplied code: ASCII digits only, exactly `length` of them."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise CodeNotCorrect(repr(raw))
    if isinstance(raw, int):
        if raw < 0:
            raise CodeNotCorrect(str(raw))
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise CodeNotCorrect(repr(raw))
    if not (text.isascii() and text.isdigit()):
        raise CodeNotCorrect(text)
    if len(text) != length:
        raise CodeLengthMismatch(f"{len(text)} != {length}")
    return text
