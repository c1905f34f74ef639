"""Phone numbers: normalise what customers send, and name the direction a number belongs to.

A direction is what tariffs and permissions are keyed by: the ISO country code now ("RU"),
refined to country:operator when the SMS routing work loads the numbering plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from kaskad.domain.errors import NumberEmpty, NumberNotValid

_SEPARATORS = re.compile(r"[\s()\-.]")
_MAX_INPUT = 32


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    digits: str  # E.164 without "+", e.g. "79001234567"
    country: str  # ISO 3166-1 alpha-2, e.g. "RU"

    @property
    def e164(self) -> str:
        return "+" + self.digits

    @property
    def direction(self) -> str:
        return self.country


def clean_digits(raw: object) -> str:
    """Strip notation ("+7 (900) 123-45-67", "8900...") down to international digits.

    Raises NumberEmpty when there is nothing number-like to work with.
    """
    if isinstance(raw, bool) or raw is None:
        raise NumberEmpty()
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        raise NumberEmpty()
    text = raw.strip()
    if not text or len(text) > _MAX_INPUT:
        raise NumberEmpty()
    text = _SEPARATORS.sub("", text)
    international = True
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    else:
        international = False
    if not (text.isascii() and text.isdigit()) or not 7 <= len(text) <= 15:
        raise NumberEmpty()
    if international:
        return text  # the country code was written: never reinterpret it
    if len(text) == 11 and text[0] == "8":
        # Russian trunk prefix: 8 XXX XXX-XX-XX is +7 XXX XXX-XX-XX.
        text = "7" + text[1:]
    elif len(text) == 10 and text[0] == "9":
        # A bare Russian mobile number without the country code.
        text = "7" + text
    return text


# phonenumbers' own pattern for Russian mobiles: matching it is exactly what is_valid_number
# decides for +7 9XX numbers (a unit test holds the two to agree), at a fraction of the cost
# of the general parser (~70 us a request).
def _ru_mobile_pattern() -> re.Pattern[str]:
    meta = phonenumbers.PhoneMetadata.metadata_for_region("RU")
    pattern = meta.mobile.national_number_pattern if meta and meta.mobile else None
    return re.compile(pattern or r"(?!)")  # no metadata: never take the fast path


_RU_MOBILE = _ru_mobile_pattern()


def parse_number(raw: object) -> PhoneNumber:
    """Parse a customer-supplied number into E.164 digits and its country."""
    digits = clean_digits(raw)
    if len(digits) == 11 and digits.startswith("79") and _RU_MOBILE.fullmatch(digits, 1):
        return PhoneNumber(digits=digits, country="RU")
    return _parse_digits(digits)


@lru_cache(maxsize=65536)
def _parse_digits(digits: str) -> PhoneNumber:
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise NumberNotValid(digits) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise NumberNotValid(digits)
    region = phonenumbers.region_code_for_number(parsed)
    if not region or region == "ZZ":
        raise NumberNotValid(digits)
    return PhoneNumber(digits=digits, country=region)
