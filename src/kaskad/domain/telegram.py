"""Telegram Gateway facts kaskad relies on, as pure functions (no I/O).

The report signature, the parameter limits of the four methods, the classification of the
gateway's error strings and the mapping of its delivery statuses onto the cascade's outcomes.
See ../shared/spec/telegram-gateway.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from kaskad.domain.channels import Outcome

DEFAULT_URL = "https://gatewayapi.telegram.org/"
METHODS = ("sendVerificationMessage", "checkSendAbility", "checkVerificationStatus",
           "revokeVerificationMessage")
CODE_RE = re.compile(r"[0-9]{4,8}", re.ASCII)
PHONE_RE = re.compile(r"\+?[1-9][0-9]{6,14}", re.ASCII)
TTL_RANGE = (30, 3600)
CODE_LENGTH_RANGE = (4, 8)
MAX_PAYLOAD_BYTES = 128
MAX_CALLBACK_URL_BYTES = 256
REPORT_WINDOW_S = 300  # how far a report's timestamp may be from now
MICROS_PER_USD = 1_000_000


class ParamError(ValueError):
    """A parameter breaks a documented limit: caught before any request is sent."""


# --------------------------------------------------------------------------- signature


def report_key(token: str) -> bytes:
    """The HMAC key of delivery reports: the raw SHA-256 digest of the API token."""
    return hashlib.sha256(token.encode()).digest()


def sign_report(token: str, timestamp: str | int, body: bytes) -> str:
    return hmac.new(report_key(token), str(timestamp).encode() + b"\n" + body,
                    hashlib.sha256).hexdigest()


class ReportCheck(StrEnum):
    OK = "ok"
    MISSING = "missing headers"
    BAD_TIMESTAMP = "bad timestamp"
    STALE = "stale timestamp"
    BAD_SIGNATURE = "bad signature"


def check_report(token: str, timestamp: str | None, signature: str | None, body: bytes,
                 now_s: float, window_s: float = REPORT_WINDOW_S) -> ReportCheck:
    """Whether a report really comes from the gateway that holds `token`, and is fresh."""
    if not timestamp or not signature:
        return ReportCheck.MISSING
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return ReportCheck.BAD_TIMESTAMP
    if abs(now_s - int(timestamp)) > window_s:
        return ReportCheck.STALE
    try:
        given = signature.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return ReportCheck.BAD_SIGNATURE
    expected = sign_report(token, timestamp, body).encode()
    return ReportCheck.OK if hmac.compare_digest(expected, given) else ReportCheck.BAD_SIGNATURE


# --------------------------------------------------------------------------- parameters


def phone_param(number: str) -> str:
    """E.164 with the plus, as the gateway wants it."""
    digits = number[1:] if number.startswith("+") else number
    if not PHONE_RE.fullmatch(digits):
        raise ParamError(f"phone_number must be E.164, got {number!r}")
    return "+" + digits


def send_params(*, phone: str, code: str | None = None, code_length: int | None = None,
                request_id: str | None = None, sender_username: str | None = None,
                callback_url: str | None = None, payload: str | None = None,
                ttl: int | None = None) -> dict[str, str | int]:
    """sendVerificationMessage's parameters, every documented limit checked."""
    params: dict[str, str | int] = {"phone_number": phone_param(phone)}
    if code is not None:
        if not CODE_RE.fullmatch(code):
            raise ParamError("code must be 4 to 8 digits")
        params["code"] = code
    elif code_length is not None:
        if not CODE_LENGTH_RANGE[0] <= code_length <= CODE_LENGTH_RANGE[1]:
            raise ParamError("code_length must be 4 to 8")
        params["code_length"] = code_length
    if request_id:
        params["request_id"] = request_id
    if sender_username:
        if not re.fullmatch(r"[A-Za-z0-9_]{5,32}", sender_username):
            raise ParamError("sender_username must be a channel username (5-32 of A-Z a-z 0-9 _)")
        params["sender_username"] = sender_username
    if callback_url:
        if len(callback_url.encode()) > MAX_CALLBACK_URL_BYTES:
            raise ParamError(f"callback_url must be at most {MAX_CALLBACK_URL_BYTES} bytes")
        if not callback_url.startswith(("https://", "http://")):
            raise ParamError("callback_url must be an http(s) URL")
        params["callback_url"] = callback_url
    if payload:
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise ParamError(f"payload must be at most {MAX_PAYLOAD_BYTES} bytes")
        params["payload"] = payload
    if ttl is not None:
        if not TTL_RANGE[0] <= ttl <= TTL_RANGE[1]:
            raise ParamError("ttl must be 30 to 3600 seconds")
        params["ttl"] = ttl
    return params


# --------------------------------------------------------------------------- money


def usd_to_micros(value: object) -> int:
    """request_cost (a JSON float in USD) as integer micro-dollars; money is never a float.

    The JSON layer hands over Decimal (parse_float=Decimal) or int; anything else is 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return 0
    try:
        amount = Decimal(value) * MICROS_PER_USD
    except InvalidOperation:
        return 0
    if not amount.is_finite() or amount < 0:
        return 0
    return int(amount.to_integral_value())


# --------------------------------------------------------------------------- errors


class ErrorKind(StrEnum):
    NO_TELEGRAM = "no_telegram"  # this number cannot receive: next step at once, cache it
    CONFIG = "config"  # token/sender/balance: the channel is unhealthy for everybody
    FLOOD = "flood"  # back off N seconds, all workers
    BAD_REQUEST = "bad_request"  # our parameters: permanent for this attempt
    TEMPORARY = "temporary"  # the gateway's own trouble: retry, then fall back
    UNKNOWN = "unknown"  # never seen: logged, treated as not deliverable


NO_TELEGRAM = frozenset({"PHONE_NUMBER_NOT_FOUND", "PHONE_NUMBER_UNOCCUPIED",
                         "PHONE_NUMBER_INVALID", "PHONE_NUMBER_BANNED"})
CONFIG = frozenset({"ACCESS_TOKEN_INVALID", "ACCESS_TOKEN_REQUIRED", "ACCESS_TOKEN_EXPIRED",
                    "BALANCE_NOT_ENOUGH", "SENDER_NOT_OWNED", "SENDER_NOT_VERIFIED",
                    "SENDER_USERNAME_INVALID", "IP_ADDRESS_NOT_ALLOWED"})
BAD_REQUEST = frozenset({"CALLBACK_URL_INVALID", "CODE_INVALID", "CODE_LENGTH_INVALID",
                         "PAYLOAD_INVALID", "REQUEST_ID_INVALID", "TTL_INVALID",
                         "UNKNOWN_METHOD", "MESSAGE_ALREADY_SENT"})
TEMPORARY = frozenset({"INTERNAL_ERROR", "TIMEOUT"})
FLOOD_RE = re.compile(r"FLOOD_WAIT_([0-9]{1,7})", re.ASCII)


@dataclass(frozen=True, slots=True)
class ErrorClass:
    kind: ErrorKind
    wait_s: int = 0  # for FLOOD

    @property
    def outcome(self) -> Outcome:
        if self.kind in (ErrorKind.FLOOD, ErrorKind.TEMPORARY):
            return Outcome.REJECTED_TEMPORARY
        return Outcome.REJECTED_PERMANENT


def classify_error(error: str) -> ErrorClass:
    """The gateway's error string, sorted into what the channel does about it."""
    name = error.strip().upper()
    flood = FLOOD_RE.fullmatch(name)
    if flood:
        return ErrorClass(ErrorKind.FLOOD, int(flood.group(1)))
    for kind, names in ((ErrorKind.NO_TELEGRAM, NO_TELEGRAM), (ErrorKind.CONFIG, CONFIG),
                        (ErrorKind.BAD_REQUEST, BAD_REQUEST), (ErrorKind.TEMPORARY, TEMPORARY)):
        if name in names:
            return ErrorClass(kind)
    return ErrorClass(ErrorKind.UNKNOWN)


# --------------------------------------------------------------------------- statuses

DELIVERY_STATUSES = ("sent", "delivered", "read", "expired", "revoked")


def outcome_of_status(status: str | None) -> Outcome | None:
    """A DeliveryStatus onto the cascade's outcomes; None when it decides nothing yet."""
    if status in ("delivered", "read"):
        return Outcome.DELIVERED
    if status in ("expired", "revoked"):
        return Outcome.NOT_DELIVERED
    return None  # "sent", absent or a status we do not know: still waiting
