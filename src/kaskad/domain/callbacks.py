"""What the customer's callback_url receives when a verification reaches its final state."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from urllib.parse import urlencode

import orjson

from kaskad.domain.clock import seed_date
from kaskad.domain.money import format_rub


def final_callback_body(*, request_id: str, number: str, code: str, state: str, price_kop: int,
                        finished_ms: int, tz: str) -> bytes:
    """Exactly the seed's fields: request_id, number, code, state, price, date."""
    return orjson.dumps({
        "request_id": request_id,
        "number": number,
        "code": code,
        "state": state,
        "price": format_rub(price_kop),
        "date": seed_date(finished_ms, tz),
    })


def new_event_id(now_ms: int | None = None) -> str:
    """A UUID version 7 (RFC 9562): milliseconds first, then 74 random bits. Time-ordered, so
    the outbox's unique index takes new ids at its end instead of on a random page each (on
    SQLite every such page is another WAL frame at COMMIT)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
             | 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF)
    return str(uuid.UUID(int=value))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 over `timestamp + "\\n" + body`, keyed per account (like Telegram's)."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"\n" + body,
                    hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    try:
        given = signature.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), given)


def message_status_body(*, msg_id: int | None, external_id: str | None, phone: str, state: int,
                        state_text: str, parts: int, charged_kop: int, channel: str | None,
                        finished_ms: int, tz: str) -> bytes:
    """A push_msg message's final state, POSTed to the account's status URL (or dlr_url)."""
    return orjson.dumps({
        "id": msg_id,
        "external_id": external_id,
        "phone": phone,
        "state": state,
        "state_text": state_text,
        "n_raw_sms": parts,
        "credits": format_rub(charged_kop),
        "channel": channel,
        "last_update": seed_date(finished_ms, tz),
    })


def call_hook_url(url: str, *, id_call: str, caller: str, call_to: str, finished_ms: int,
                  tz: str) -> str:
    """wait_call's notification: a GET to the customer's URL with the call's facts appended
    (spec/ssms-api.md: the parameter names are ours, documented in the README)."""
    query = urlencode({"id_call": id_call, "phone": caller, "call_to_number": call_to,
                       "waiting_call_from": caller, "status": "ok",
                       "time": seed_date(finished_ms, tz)})
    return f"{url}{'&' if '?' in url else '?'}{query}"
