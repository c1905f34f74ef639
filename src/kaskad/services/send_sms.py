"""send_sms: a customer's text message (the ssms API's push_msg) onto the durable cascade.

A message is a verification of kind "sms": the same engine sends it, the same ledger holds its
price (the SMS tariff times its parts) and captures it only on delivery, and the same outbox
reports its final state. It is answered at once with its id; the state follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from kaskad.domain.account_settings import AccountSettings
from kaskad.domain.cascade import Resending
from kaskad.domain.channels import ChannelName
from kaskad.domain.clock import Clock, to_ms
from kaskad.domain.errors import BadRequest
from kaskad.domain.messages import plan_message
from kaskad.domain.numbers import parse_number
from kaskad.domain.sms import count_parts
from kaskad.engine.scheduler import Engine
from kaskad.services.send_code import new_request_id
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.verifications import CreateVerifications, NewVerification, Verification

MAX_TEXT = 2000  # characters; about 13 GSM or 30 UCS-2 parts


@dataclass(frozen=True, slots=True)
class SmsRequest:
    account_id: int
    settings: AccountSettings
    phones: list[str]
    text: str
    sender: str  # checked against the account's approved names by the caller
    route: tuple[ChannelName, ...]
    external_id: str | None = None
    status_url: str | None = None
    run_at_s: float | None = None


class SendSms:
    def __init__(self, *, batcher: WriteBatcher, create_op: CreateVerifications, engine: Engine,
                 clock: Clock, node_id: str, lease_s: float,
                 direction_of: Callable[[str, str], str]) -> None:
        self.batcher = batcher
        self.create_op = create_op
        self.engine = engine
        self.clock = clock
        self.node_id = node_id
        self.lease_s = lease_s
        self.direction_of = direction_of

    async def __call__(self, req: SmsRequest) -> list[Verification]:
        """One message per number. Every number is parsed before any is queued; a number
        refused later (money, spam list) leaves the others sent."""
        if not req.text.strip():
            raise BadRequest("text is empty")
        if len(req.text) > MAX_TEXT:
            raise BadRequest(f"text is longer than {MAX_TEXT} characters")
        plan = plan_message(req.text, req.route,
                            codes_to_telegram=req.settings.sms_codes_to_telegram,
                            code_range=(req.settings.code_length_min,
                                        req.settings.code_length_max))
        numbers = [parse_number(p) for p in req.phones]
        if not numbers:
            raise BadRequest("phone is required")
        await self.engine.admit()  # backpressure: waits while this node's queue is full
        now = self.clock()
        parts = count_parts(req.text)
        items = [NewVerification(
            request_id=new_request_id(now), account_id=req.account_id, number=n.digits,
            direction=self.direction_of(n.digits, n.direction), code=plan.code,
            resending=Resending.STOP, callback_url=req.status_url, channels=plan.channels,
            now_ms=to_ms(now), lease_owner=self.node_id,
            lease_until_ms=to_ms(now + self.lease_s), kind="sms", text=req.text,
            sender=req.sender, parts=parts, external_id=req.external_id,
            run_at_ms=to_ms(req.run_at_s) if req.run_at_s else None) for n in numbers]
        created = await asyncio.gather(  # futures, not coroutines: no task per number
            *(self.batcher.enqueue(self.create_op, item) for item in items),
            return_exceptions=True)
        made = [c for c in created if isinstance(c, Verification)]
        self.engine.run_now([v for v in made if v.next_run_at == v.created_at])
        if not made:  # every number refused: the first refusal is the answer
            first = created[0]
            raise first if isinstance(first, BaseException) else BadRequest("not sent")
        return made
