"""send_code: the use case behind the seed's POST /api/send/.

Validate, authenticate, create the verification with its balance hold (group-committed), start
its first step on this node at once, and wait (bounded) for that step's outcome so the answer
can say what happened, as the seed's success answer does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from kaskad.domain.cascade import Resending, State, policy_for
from kaskad.domain.clock import Clock, to_ms
from kaskad.domain.codes import generate_code, parse_code, parse_code_length
from kaskad.domain.errors import BadRequest, KaskadError
from kaskad.domain.numbers import parse_number
from kaskad.engine.bus import StateBus
from kaskad.engine.scheduler import Engine
from kaskad.services.auth import Authenticator
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.verifications import CreateVerifications, NewVerification, Verification


@dataclass(frozen=True, slots=True)
class SendCodeInput:
    api_key: object
    number: object
    resending: object = None
    code_length: object = None
    code: object = None
    callback_url: object = None


CHANNELS_FOR = {r: policy_for(r).channels for r in Resending}


def parse_resending(raw: object) -> Resending:
    if raw is None or raw == "":
        return Resending.STOP
    if isinstance(raw, str):
        try:
            return Resending(raw.strip().lower())
        except ValueError:
            pass
    raise BadRequest(f"resending must be voice, sms or stop, not {raw!r}")


def parse_callback_url(raw: object) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 2048:
        raise BadRequest("callback_url must be an http(s) URL")
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("callback_url must be an http(s) URL")
    return raw.strip()


def new_request_id(now_s: float | None = None) -> str:
    """Time-ordered (so B-tree inserts append instead of splitting pages at random: 2.5x faster
    on SQLite) and unguessable: 11 hex digits of milliseconds, then 48 random bits."""
    ms = int((time.time() if now_s is None else now_s) * 1000)
    return f"{ms:011x}{secrets.token_hex(6)}"


class SendCode:
    def __init__(self, *, auth: Authenticator, batcher: WriteBatcher,
                 create_op: CreateVerifications, engine: Engine, bus: StateBus, clock: Clock,
                 node_id: str, lease_s: float, wait_s: float,
                 direction_of: Callable[[str, str], str] | None = None,
                 default_resending: Callable[[int], Awaitable[str | None]] | None = None
                 ) -> None:
        self.auth = auth
        self.batcher = batcher
        self.create_op = create_op
        self.engine = engine
        self.bus = bus
        self.clock = clock
        self.node_id = node_id
        self.lease_s = lease_s
        self.wait_s = wait_s
        # (digits, country) -> the direction tariffs and routes use ("RU:mts" when known)
        self.direction_of = direction_of or (lambda _digits, country: country)
        # account id -> its `default_resending` setting (the cabinet's "default cascade")
        self.default_resending = default_resending

    async def __call__(self, req: SendCodeInput) -> Verification:
        # Syntax first (unknown_request), then who is asking, then what they ask for.
        resending = parse_resending(req.resending)
        callback_url = parse_callback_url(req.callback_url)
        account_id = await self.auth.account_for(req.api_key)
        if (req.resending is None or req.resending == "") and self.default_resending:
            resending = parse_resending(await self.default_resending(account_id))
        length = parse_code_length(req.code_length)
        code = parse_code(req.code, length) or generate_code(length)
        number = parse_number(req.number)
        await self.engine.admit()  # backpressure: waits while this node's queue is full
        now = self.clock()
        item = NewVerification(
            request_id=new_request_id(now), account_id=account_id, number=number.digits,
            direction=self.direction_of(number.digits, number.direction), code=code,
            resending=resending,
            callback_url=callback_url, channels=CHANNELS_FOR[resending],
            now_ms=to_ms(now), lease_owner=self.node_id,
            lease_until_ms=to_ms(now + self.lease_s))
        created = await self.batcher.submit(self.create_op, item)
        waiter = self.bus.waiter(created.request_id, _past_pending, self.wait_s)
        self.engine.run_now([created])
        try:
            # None after wait_s: the answer says "pending"; the callback brings the final state.
            return await waiter or created
        finally:
            self.bus.forget(created.request_id, waiter)


def _past_pending(v: Verification) -> bool:
    return v.state is not State.PENDING


__all__ = ["KaskadError", "SendCode", "SendCodeInput"]
