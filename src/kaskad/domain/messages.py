"""What a customer's message becomes: which channels carry it, and what code (if any) they
carry instead of the text. Pure; used by kaskad.services.send_sms.

Telegram Gateway carries verification codes only, so a text goes to Telegram only as the code
found in it (seed 000: an account can ask for this automatically), with the full text as the SMS
fallback. A flash call carries the text's trailing 3-4 digits as its caller id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaskad.domain.channels import ChannelName
from kaskad.domain.code_detect import detect_code
from kaskad.domain.errors import BadRequest

TRAILING_DIGITS = re.compile(r"(?<![0-9])([0-9]{3,4})\W*$")


@dataclass(frozen=True, slots=True)
class MessagePlan:
    channels: tuple[ChannelName, ...]
    code: str  # what Telegram or a flash call carries; "" for an SMS-only message


def plan_message(text: str, route: tuple[ChannelName, ...], *, codes_to_telegram: bool,
                 code_range: tuple[int, int]) -> MessagePlan:
    """The cascade for `text` sent on `route` (the customer's channels, in order)."""
    lo, hi = code_range
    if route == (ChannelName.SMS,) and codes_to_telegram:
        code = detect_code(text, lo, hi)
        if code is not None:
            return MessagePlan((ChannelName.TELEGRAM, ChannelName.SMS), code)
        return MessagePlan(route, "")
    channels = list(route)
    code = ""
    if ChannelName.TELEGRAM in channels:
        found = detect_code(text, 4, 8)  # what Telegram Gateway accepts
        if found is None:
            channels.remove(ChannelName.TELEGRAM)  # no code: Telegram cannot carry this text
        else:
            code = found
    if ChannelName.FLASH_CALL in channels:
        match = TRAILING_DIGITS.search(text)
        if match is None:
            channels.remove(ChannelName.FLASH_CALL)
        elif not code:
            code = match.group(1)
    if not channels:
        raise BadRequest("no channel of this route can carry this text: Telegram and flash "
                         "calls carry codes only")
    return MessagePlan(tuple(channels), code)
