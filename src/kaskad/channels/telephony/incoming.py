"""Incoming-call verification: a subscriber calls one of our DIDs and we answer 486 Busy.

No media and no answer, so the caller pays nothing. The hook (wait_call matching) runs once per
INVITE: the transaction layer answers retransmissions with the same response without calling it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog
from aiosipua.message import SipRequest

from kaskad.channels.telephony.numbers import caller_of, normalise_number, uri_user
from kaskad.channels.telephony.transactions import ServerTransaction

log = structlog.get_logger(__name__)

IncomingHook = Callable[[str, str, str], Awaitable[bool]]  # (caller, callee, call_id) -> matched


@dataclass(frozen=True, slots=True)
class RejectedCall:
    """A call that matched none of our numbers (or had no caller), kept for the logs."""

    caller: str
    callee: str
    call_id: str
    status: int
    reason: str


RejectedHook = Callable[[RejectedCall], Awaitable[None]]


async def _ignore(call: RejectedCall) -> None:
    return None


class IncomingCalls:
    """The application handler of our SipStack: DIDs get 486, others 404, OPTIONS 200."""

    def __init__(self, dids: Iterable[str], on_incoming: IncomingHook, *,
                 on_rejected: RejectedHook | None = None) -> None:
        self.dids = {normalise_number(did) or did for did in dids}
        self.on_incoming = on_incoming
        self.on_rejected = on_rejected or _ignore

    async def __call__(self, request: SipRequest, txn: ServerTransaction) -> None:
        if request.method == "OPTIONS":
            txn.respond(200, headers={"Allow": "INVITE, ACK, CANCEL, BYE, OPTIONS"})
        elif request.method == "INVITE":
            await self._invite(request, txn)
        elif request.method == "BYE":
            txn.respond(481)  # we never establish a dialog
        else:
            txn.respond(405, headers={"Allow": "INVITE, ACK, CANCEL, BYE, OPTIONS"})

    async def _invite(self, request: SipRequest, txn: ServerTransaction) -> None:
        txn.respond(100)
        callee = normalise_number(uri_user(request.uri)) or \
            normalise_number(uri_user(request.headers.get_first("to") or ""))
        caller = caller_of(request.headers.get_first("p-asserted-identity"),
                           request.headers.get_first("from"))
        call_id = request.call_id or ""
        if callee not in self.dids:
            txn.respond(404)
            await self._rejected(RejectedCall(caller, callee, call_id, 404, "not our number"))
            return
        matched = False
        try:
            matched = await self.on_incoming(caller, callee, call_id)
        except Exception:
            log.exception("sip.incoming_hook_failed", call_id=call_id)
        finally:
            txn.respond(486)  # busy whether matched or not: the caller must not be charged
        log.info("sip.incoming_call", caller=caller, callee=callee, call_id=call_id,
                 matched=matched)
        if not matched:
            await self._rejected(RejectedCall(caller, callee, call_id, 486, "nobody waits"))

    async def _rejected(self, call: RejectedCall) -> None:
        log.info("sip.incoming_rejected", caller=call.caller, callee=call.callee,
                 call_id=call.call_id, status=call.status, reason=call.reason)
        try:
            await self.on_rejected(call)
        except Exception:
            log.exception("sip.rejected_hook_failed", call_id=call.call_id)
