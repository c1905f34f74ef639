"""Is this SMS text a verification code (seed 000)? Then Telegram may carry just the code.

A false "yes" is the expensive mistake: the subscriber would get a bare code instead of the
text (a reminder, a balance, an order), and Telegram's terms allow verification codes only. So
the detector says yes only when the text talks about a code or password and exactly one digit
run of the allowed length stands on its own: not a part of a date, a time, an amount, a phone
number, an order or a tracking number, and not a promo code. Anything unsure goes as SMS.
"""

from __future__ import annotations

import re

# The words that make a text about a one-time code (stems, lower case, Russian and English).
CODE_WORDS = re.compile(
    r"код\w*|пароль|парол\w*|\bkod\b|\bparol\w*|pin\b|пин-?код\w*|otp\b|code\b|codes\b|passcode|password|"
    r"verification|verify|подтвержд\w*|одноразов\w*|авторизац\w*|вход\w*|login|sign[- ]?in",
    re.IGNORECASE)
# Texts that use such words but are not a verification code.
NOT_CODE_WORDS = re.compile(
    r"промо-?код\w*|promo ?code|купон\w*|coupon|скидк\w*|discount|код (?:заказа|товара|"
    r"региона|города|подразделения|домофона|двери)|postal code|zip code|indeks|индекс\w*|"
    r"трек|track(?:ing)?|код\w* ошибки|error code|код\w* клиента|(?:client|customer) code",
    re.IGNORECASE)
# A digit run with what surrounds it: the neighbours decide whether it stands alone.
DIGIT_RUN = re.compile(r"[0-9]+", re.ASCII)
MONEY_AFTER = re.compile(r"\s?(?:₽|руб|р\.|rub|usd|eur|\$|€|%|тыс|млн|коп)", re.IGNORECASE)
MONEY_BEFORE = re.compile(r"(?:\$|€|₽|сумм\w*|итого|total|balance|баланс\w*)\s?:?\s?$",
                          re.IGNORECASE)
NUMBERED_BEFORE = re.compile(
    r"(?<!\w)(?:№|#|no\.|nr\.|заказ\w*|order|счет\w*|счёт\w*|invoice|рейс\w*|flight|кв\.|дом|д\.|"
    r"ул\.|квартир\w*|офис\w*|room|каб\.|договор\w*|contract|ticket|билет\w*|посылк\w*|"
    r"отправлени\w*|parcel|id)\s?:?\s?$",
    re.IGNORECASE)
# Characters that glue a digit run to another number (dates, times, phones, decimals, ranges).
GLUE = set(".,:/-–—+")
# A code written in two groups for reading: "123-456", "123 456" (not part of a longer number).
GROUPED = re.compile(r"(?<![0-9+\-–—.,:/])([0-9]{3,4})[- ]([0-9]{3,4})(?![0-9]|[-–—.,:/][0-9])",
                     re.ASCII)


def _candidates(text: str, min_len: int, max_len: int) -> list[tuple[int, str]]:
    """Digit runs of the allowed length that are not glued to other numbers or units."""
    found, grouped = [], []
    for match in GROUPED.finditer(text):
        before = text[max(0, match.start() - 2):match.start()]
        digits = match.group(1) + match.group(2)
        if len(before) == 2 and before[0].isdigit():  # "8 800 555": a phone, not a code
            continue
        if min_len <= len(digits) <= max_len and not _letter_next(text, *match.span()):
            found.append((match.start(), digits))
            grouped.append(match.span())
    for match in DIGIT_RUN.finditer(text):
        digits, start, end = match.group(), match.start(), match.end()
        if not min_len <= len(digits) <= max_len:
            continue
        if any(low <= start < high for low, high in grouped):
            continue
        before, after = text[max(0, start - 2):start], text[end:end + 2]
        if _glued(before, after):
            continue
        if MONEY_AFTER.match(text, end) or MONEY_BEFORE.search(text[max(0, start - 12):start]):
            continue
        if NUMBERED_BEFORE.search(text[max(0, start - 14):start]):
            continue
        if _letter_next(text, start, end):
            continue
        found.append((start, digits))
    return found


def _glued(before: str, after: str) -> bool:
    """`12.05`, `14:00`, `8-800`, `+7`, `1/2`: a separator with a digit on its far side."""
    if before and before[-1] in GLUE and (len(before) < 2 or before[-2].isdigit()
                                          or before[-1] == "+"):
        return True
    return bool(after and after[0] in GLUE and len(after) > 1 and after[1].isdigit())


def _letter_next(text: str, start: int, end: int) -> bool:
    """`A1234B`, `12345abc`: part of an identifier, not a code on its own."""
    return (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())


def detect_code(text: str, min_len: int = 4, max_len: int = 8) -> str | None:
    """The verification code this text carries, or None if it should go as a plain SMS."""
    if not CODE_WORDS.search(text) or NOT_CODE_WORDS.search(text):
        return None
    candidates = _candidates(text, min_len, max_len)
    distinct = {digits for _, digits in candidates}
    if len(distinct) != 1:
        return None  # none, or several different numbers: unsure
    # Numbers of other lengths (a year, a long id) are fine; a second code-sized run is not.
    return distinct.pop()
