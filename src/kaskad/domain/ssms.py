"""The ssms-family API's vocabulary (spec/ssms-api.md): error codes, message states, routes,
sender names, and the envelope in JSON and XML. Pure: the HTTP translator in
kaskad.api.compat.ssms uses it, and tests check it directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from kaskad.domain import errors as e
from kaskad.domain.channels import ChannelName
from kaskad.domain.dlr import (
    SSMS_ACCEPTED,
    SSMS_DELIVERED,
    SSMS_EXPIRED,
    SSMS_NOT_DELIVERED,
    SSMS_REJECTED,
    SSMS_SENT,
    SSMS_STATE_TEXT,
    parse_stat,
)

# --------------------------------------------------------------------------- errors

OK = 0
WRONG_LOGIN = 2
API_OFF = 3
UNKNOWN_METHOD = 5
MISSING_PARAMS = 7
SESSION_EXPIRED = 18
LOG_IN_FIRST = 42
SEND_FAILED = 99
NO_SUCH = 602
USER_BLOCKED = 605
SENDER_NOT_ALLOWED = 607
SENDER_LENGTH = 608
NO_ROUTE = 609
NO_TARIFF = 610
BAD_NUMBER = 617
ACCOUNT_BLACKLIST = 618
SENDER_NOT_LATIN = 620
SENDER_INCORRECT = 621
GLOBAL_BLACKLIST = 622
NO_MONEY = 623
NO_KEY = 625
WRONG_KEY = 627
TOO_MANY_NUMBERS = 629
MIXED_SCRIPTS = 631
UPSTREAM_FAILED = 699

TEXTS: dict[int, tuple[str, str]] = {  # Russian first (what clients show), English second
    OK: ("Операция выполнена успешно", "Done"),
    WRONG_LOGIN: ("Неверный логин или пароль", "Wrong login or password"),
    API_OFF: ("API отключено для этого аккаунта", "The API is switched off for this account"),
    UNKNOWN_METHOD: ("Неизвестный метод", "Unknown method"),
    MISSING_PARAMS: ("Не указаны обязательные параметры", "Required parameters are missing"),
    SESSION_EXPIRED: ("Сессия истекла, войдите снова", "Session expired, log in again"),
    LOG_IN_FIRST: ("Необходимо авторизоваться", "Log in first"),
    SEND_FAILED: ("Ошибка отправки", "Sending failed"),
    NO_SUCH: ("Не найдено", "Not found"),
    USER_BLOCKED: ("Пользователь заблокирован", "The user is blocked"),
    SENDER_NOT_ALLOWED: ("Имя отправителя не разрешено", "This sender name is not allowed"),
    SENDER_LENGTH: ("Неверная длина имени отправителя", "Wrong sender name length"),
    NO_ROUTE: ("Оператор не подключен", "No route to this operator"),
    NO_TARIFF: ("К аккаунту не подключен тариф", "No tariff for this account"),
    BAD_NUMBER: ("Неверный номер получателя", "Wrong recipient number"),
    ACCOUNT_BLACKLIST: ("Номер в черном списке аккаунта", "The number is in your blacklist"),
    SENDER_NOT_LATIN: ("Имя отправителя должно быть латиницей",
                       "The sender name must be in Latin letters"),
    SENDER_INCORRECT: ("Некорректное имя отправителя", "Incorrect sender name"),
    GLOBAL_BLACKLIST: ("Номер в глобальном черном списке", "The number is in the global blacklist"),
    NO_MONEY: ("Недостаточно средств", "Not enough money"),
    NO_KEY: ("Не указан API-ключ", "No API key given"),
    WRONG_KEY: ("Неверный API-ключ", "Wrong API key"),
    TOO_MANY_NUMBERS: ("Слишком много номеров в запросе", "Too many numbers in one request"),
    MIXED_SCRIPTS: ("Кириллица и латиница смешаны в одном слове",
                    "Cyrillic and Latin letters mixed in one word"),
    UPSTREAM_FAILED: ("Ошибка соединения с оператором", "Upstream connection failed"),
}


class SsmsError(e.KaskadError):
    """An error that exists only on this API (or whose code the generic one cannot tell)."""

    def __init__(self, err_code: int, detail: str = "") -> None:
        super().__init__(detail or TEXTS.get(err_code, TEXTS[SEND_FAILED])[1])
        self.err_code = err_code


def err_code_for(exc: e.KaskadError) -> int:
    """Our error hierarchy in this API's numbers."""
    if isinstance(exc, SsmsError):
        return exc.err_code
    if isinstance(exc, e.NumberInGlobalSpamList):
        return GLOBAL_BLACKLIST
    if isinstance(exc, e.NoTariff):
        return NO_ROUTE
    return _BY_TYPE.get(type(exc), MISSING_PARAMS)


_BY_TYPE: dict[type[e.KaskadError], int] = {
    e.BadRequest: MISSING_PARAMS,
    e.AuthFailed: WRONG_KEY,
    e.AccountDisabled: USER_BLOCKED,
    e.NumberEmpty: BAD_NUMBER,
    e.NumberNotValid: BAD_NUMBER,
    e.NumberNotPermitted: NO_ROUTE,
    e.NumberInSpamList: ACCOUNT_BLACKLIST,
    e.NotEnoughMoney: NO_MONEY,
    e.NotFound: NO_SUCH,
    e.CodeNotCorrect: MISSING_PARAMS,
}

# --------------------------------------------------------------------------- envelope


def envelope(err_code: int, data: Any, text: str | None = None) -> dict[str, Any]:
    """`{"response": {"msg": {"err_code": "0", "text": ..., "type": ...}, "data": ...}}`:
    err_code is a string (clients compare strings); every failure is type "error"."""
    return {"response": {
        "msg": {"err_code": str(err_code),
                "text": text if text is not None else TEXTS.get(err_code, TEXTS[SEND_FAILED])[0],
                "type": "message" if err_code == OK else "error"},
        "data": data if err_code == OK else None,
    }}


def to_xml(payload: Mapping[str, Any]) -> str:
    """The same tree as XML. Lists repeat an `<item>` element (our choice; the providers'
    list form is not documented); None is an empty element."""
    return '<?xml version="1.0" encoding="utf-8"?>\n' + "".join(
        _element(str(k), v) for k, v in payload.items())


def _element(name: str, value: Any) -> str:
    tag = name if _XML_NAME.fullmatch(name) else f"item_{_XML_SAFE.sub('_', name)}"
    if value is None:
        return f"<{tag}/>"
    if isinstance(value, Mapping):
        inner = "".join(_element(str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        inner = "".join(_element("item", v) for v in value)
    elif isinstance(value, bool):
        inner = "1" if value else "0"
    else:
        inner = escape(_NOT_XML.sub("\ufffd", str(value)))
    return f"<{tag}>{inner}</{tag}>"


# Characters XML 1.0 cannot carry (a text may hold them): shown as U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_XML_SAFE = re.compile(r"[^A-Za-z0-9_.-]")

# --------------------------------------------------------------------------- push_msg inputs

ROUTES = {"sms": ChannelName.SMS, "tg": ChannelName.TELEGRAM, "pc": ChannelName.FLASH_CALL}
MESSENGERS = frozenset({"vb", "vk", "wp"})  # Viber, VK, WhatsApp: not carried by kaskad


def parse_route(raw: str | None) -> tuple[ChannelName, ...]:
    """`sms` (default), `tg`, `pc`, or a cascade joined with `-` (`tg-sms`)."""
    if raw is None or not raw.strip():
        return (ChannelName.SMS,)
    out: list[ChannelName] = []
    for part in raw.strip().lower().split("-"):
        if part in MESSENGERS:
            raise SsmsError(NO_ROUTE, f"route {part!r} is not carried by this gateway")
        channel = ROUTES.get(part)
        if channel is None:
            raise SsmsError(MISSING_PARAMS, f"unknown route {part!r}")
        if channel not in out:
            out.append(channel)
    return tuple(out)


_SENDER_CHARS = re.compile(r"[A-Za-z0-9.\- _!&]+")
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-z]")


def check_sender(name: str, approved: list[str]) -> str:
    """An alphanumeric sender: 1..11 characters in Latin letters, digits and `.-_ !&`, or a
    number of up to 15 digits; it must be one of the account's approved names (any approved
    name matches case-insensitively, and is sent as approved)."""
    name = name.strip()
    if not name or (len(name) > 11 and not (name.isdigit() and len(name) <= 15)):
        raise SsmsError(SENDER_LENGTH)
    if _CYRILLIC.search(name):
        raise SsmsError(SENDER_NOT_LATIN)
    if not _SENDER_CHARS.fullmatch(name):
        raise SsmsError(SENDER_INCORRECT)
    for candidate in approved:
        if candidate.lower() == name.lower():
            return candidate
    raise SsmsError(SENDER_NOT_ALLOWED, f"sender {name!r} is not approved for this account")


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def mixes_scripts(text: str) -> bool:
    """A word written in both Cyrillic and Latin letters ("Сбeрбанк" with a Latin e): the
    classic look-alike spoofing trick, which this API refuses (631)."""
    if not (_CYRILLIC.search(text) and _LATIN.search(text)):
        return False  # one script in the whole text: the common case, without splitting
    return any(_CYRILLIC.search(w) and _LATIN.search(w) for w in _WORD.findall(text))


def split_phones(raw: str, limit: int) -> list[str]:
    """`phone` may carry several numbers separated by commas or semicolons (at most `limit`)."""
    phones = [p.strip() for p in re.split(r"[,;]", raw) if p.strip()]
    if len(phones) > limit:
        raise SsmsError(TOO_MANY_NUMBERS)
    return phones


# --------------------------------------------------------------------------- message states


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the message's state code is computed from."""

    final: bool
    delivered: bool
    state_reason: str  # e.g. "sms_rejected", "sms_not_delivered", "sms_timeout"
    sms_accepted: bool  # the SMSC took the (current) SMS step
    last_stat: str  # the last receipt's stat word ("EXPIRED", "UNDELIV"...), if any


def state_code(f: MessageFacts) -> int:
    """The Kannel-style state code (spec §7) of a message."""
    if f.delivered:
        return SSMS_DELIVERED
    if not f.final:
        return SSMS_ACCEPTED if f.sms_accepted else SSMS_SENT
    if f.state_reason.endswith("_rejected"):
        return SSMS_REJECTED
    state = parse_stat(f.last_stat)
    if state is not None and state.outcome is not None:
        return state.ssms_state
    return SSMS_EXPIRED if f.state_reason.endswith("_timeout") else SSMS_NOT_DELIVERED


def state_text(code: int, lang: str = "ru") -> str:
    ru, en = SSMS_STATE_TEXT.get(code, SSMS_STATE_TEXT[SSMS_NOT_DELIVERED])
    return ru if lang == "ru" else en
