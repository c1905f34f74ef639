"""What the customer's callback_url receives when a verification reaches its final state."""

from __future__ import annotations

import hashlib
import hmac
import uuid

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


def new_event_id() -> str:
    return str(uuid.uuid4())


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
