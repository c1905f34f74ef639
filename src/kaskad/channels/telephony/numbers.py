"""Pure number handling for SIP: who called, which of our numbers, which caller id to show."""

from __future__ import annotations

import random
import re
from urllib.parse import unquote

from kaskad.channels.telephony.settings import FlashRange

_URI_USER = re.compile(r"(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)
_VISUAL_SEPARATORS = re.compile(r"[\s().\-]")


def uri_user(header_value: str) -> str:
    """The user part of the first SIP/tel URI in a header value ('' when there is none)."""
    match = _URI_USER.search(header_value)
    return unquote(match.group(1)) if match else ""


def normalise_number(raw: str) -> str:
    """E.164 digits without '+', the way kaskad stores numbers; '' when not a phone number.

    Russian trunks still send the domestic form: 8XXXXXXXXXX becomes 7XXXXXXXXXX, and a bare
    ten-digit 9XXXXXXXXX (mobile without prefix) becomes 79XXXXXXXXX.
    """
    digits = _VISUAL_SEPARATORS.sub("", raw).removeprefix("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit() or not 5 <= len(digits) <= 15:
        return ""
    if len(digits) == 11 and digits.startswith("8"):
        return "7" + digits[1:]
    if len(digits) == 10 and digits.startswith("9"):
        return "7" + digits
    return digits


def caller_of(p_asserted_identity: str | None, from_header: str | None) -> str:
    """The caller as E.164 digits: the network-asserted identity wins over the From header."""
    for header in (p_asserted_identity, from_header):
        if header:
            number = normalise_number(uri_user(header))
            if number:
                return number
    return ""


def flash_caller_id(flash_range: FlashRange, code: str, rng: random.Random | None = None) -> str:
    """A caller id in the trunk's range whose last len(code) digits are the code.

    The digits between the prefix and the code are random, so consecutive flash calls to one
    subscriber do not come from one number (some phones collapse repeated calls).
    """
    if not code.isdigit():
        raise ValueError("a flash-call code is digits only")
    if len(code) > flash_range.digits:
        raise ValueError(f"code of {len(code)} digits does not fit "
                         f"a {flash_range.digits}-digit range")
    filler = flash_range.digits - len(code)
    pick = rng or random.Random()
    middle = "".join(str(pick.randrange(10)) for _ in range(filler))
    return flash_range.prefix + middle + code
