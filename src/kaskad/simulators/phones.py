"""The sandbox phone network: subscribers' phones behind a SIP trunk, over loopback.

kaskad's trunk points at it. Each called number behaves by rule (the sandbox World's voice rule
for its last digit, or an explicit override): it answers and records the RTP it receives, rings
until cancelled (recording the caller id it saw, as a flash call needs), is busy, rejects, or
never answers. It can also place a call to one of our pool numbers on demand.

It can challenge INVITE and REGISTER with digest authentication like a carrier does; the check
is computed here with hashlib, not with the client's digest code, so the two can disagree.

Run on its own: python -m kaskad.simulators.phones --listen 127.0.0.1:5070
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from aiosipua.headers import parse_auth
from aiosipua.message import SipRequest

from kaskad.channels.telephony.dialog import OutgoingDialog
from kaskad.channels.telephony.numbers import normalise_number, uri_user
from kaskad.channels.telephony.rtp import RtpSession
from kaskad.channels.telephony.sdp import offer
from kaskad.channels.telephony.stack import SipStack
from kaskad.channels.telephony.transactions import Kind, ServerTransaction, Timers
from kaskad.simulators.world import Voice, World


class Phone(StrEnum):
    ANSWERS = "answers"
    RINGS = "rings"  # rings until cancelled (never answers)
    BUSY = "busy"
    REJECTS = "rejects"  # 603 Decline


@dataclass
class ReceivedCall:
    """What one simulated phone saw of one call."""

    number: str
    caller_id: str
    call_id: str
    behaviour: Phone
    answered: bool = False
    cancelled: bool = False
    final_acked: bool = False  # the ACK of our final answer arrived (487, 486, 603 or 200)
    hung_up_by_caller: bool = False
    rtp: RtpSession | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def packets(self) -> int:
        return self.rtp.stats.packets if self.rtp else 0


def behaviour_by_world(world: World) -> Callable[[str], Phone]:
    def rule(number: str) -> Phone:
        voice = world.behaviour(number).voice
        return Phone.RINGS if voice is Voice.NO_ANSWER else Phone.ANSWERS
    return rule


class PhoneNetwork:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, world: World | None = None,
                 overrides: dict[str, Phone] | None = None, answer_delay: float = 0.05,
                 credentials: tuple[str, str] | None = None, register_expires: int = 300,
                 timers: Timers | None = None) -> None:
        self.stack = SipStack(host, port, handler=self._handle, timers=timers,
                              user_agent="kaskad-phones")
        self.rule = behaviour_by_world(world or World())
        self.overrides = overrides or {}
        self.answer_delay = answer_delay
        self.credentials = credentials
        self.register_expires = register_expires
        self.calls: list[ReceivedCall] = []
        self.registrations: list[str] = []  # Contact of every accepted REGISTER
        self.changed = asyncio.Condition()
        self._nonce = os.urandom(8).hex()

    async def start(self) -> None:
        await self.stack.start()

    async def stop(self) -> None:
        for call in self.calls:
            if call.rtp:
                call.rtp.close()
        await self.stack.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.stack.address

    def behaviour(self, number: str) -> Phone:
        return self.overrides.get(number) or self.overrides.get(number[-1:]) or self.rule(number)

    async def wait_until(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Await a condition on what the phones recorded (tests never sleep)."""
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # --- authentication (the carrier side) --------------------------------------------------

    def _authorised(self, request: SipRequest, header: str) -> bool:
        if self.credentials is None:
            return True
        raw = request.headers.get_first(header)
        if not raw:
            return False
        params = parse_auth(raw).params
        user, password = self.credentials
        md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{user}:{params.get('realm', '')}:{password}")
        ha2 = md5(f"{request.method}:{params.get('uri', '')}")
        expected = md5(f"{ha1}:{params.get('nonce')}:{params.get('nc')}:{params.get('cnonce')}:"
                       f"auth:{ha2}")
        return params.get("username") == user and params.get("nonce") == self._nonce and \
            params.get("qop") == "auth" and params.get("response") == expected

    def _challenge(self, txn: ServerTransaction, status: int) -> None:
        header = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        txn.respond(status, headers={header: f'Digest realm="sandbox", nonce="{self._nonce}", '
                                             'qop="auth", algorithm=MD5'})

    # --- requests ----------------------------------------------------------------------------

    async def _handle(self, request: SipRequest, txn: ServerTransaction) -> None:
        if request.method == "INVITE":
            if not self._authorised(request, "proxy-authorization"):
                self._challenge(txn, 407)
                return
            await self._invite(request, txn)
        elif request.method == "REGISTER":
            if not self._authorised(request, "authorization"):
                self._challenge(txn, 401)
                return
            contact = request.headers.get_first("contact") or ""
            self.registrations.append(contact)
            txn.respond(200, headers={"Contact": f"{contact};expires={self.register_expires}"})
            await self._notify()
        else:
            txn.respond(200)

    async def _invite(self, request: SipRequest, txn: ServerTransaction) -> None:
        number = normalise_number(uri_user(request.uri)) or uri_user(request.uri)
        call = ReceivedCall(number, uri_user(request.headers.get_first("from") or ""),
                            request.call_id or "", self.behaviour(number))
        self.calls.append(call)
        await self._notify()
        txn.respond(100)
        if call.behaviour is Phone.BUSY:
            txn.respond(486)
        elif call.behaviour is Phone.REJECTS:
            txn.respond(603)
        else:
            txn.respond(180)
            await self._ring(call, request, txn)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stack.timers.transaction_timeout):
                await txn.acked.wait()
        call.final_acked = txn.acked.is_set()
        if not call.answered:
            call.ended.set()
        await self._notify()

    async def _ring(self, call: ReceivedCall, request: SipRequest,
                    txn: ServerTransaction) -> None:
        if call.behaviour is Phone.RINGS:
            await txn.cancelled.wait()
            call.cancelled = True
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.answer_delay):
                await txn.cancelled.wait()
        if txn.cancelled.is_set():
            call.cancelled = True
            return
        call.rtp = await RtpSession.open(self.stack.host)
        self.stack.dialogs[call.call_id] = lambda req, t: self._in_call(call, req, t)
        call.answered = True
        txn.respond(200, headers={"Contact": self.stack.contact(call.number, txn.kind)},
                    body=offer(self.stack.public_host, call.rtp.port))

    async def _in_call(self, call: ReceivedCall, request: SipRequest,
                       txn: ServerTransaction) -> None:
        txn.respond(200)
        if request.method == "BYE":
            call.hung_up_by_caller = True
            self.stack.dialogs.pop(call.call_id, None)
            call.ended.set()
            await self._notify()

    # --- calling our pool numbers -------------------------------------------------------------

    async def call(self, from_number: str, to_did: str, our_address: tuple[str, int], *,
                   transport: str = "udp", p_asserted: str | None = None,
                   within: float = 10.0) -> int:
        """Call one of kaskad's numbers as a subscriber would; returns the final status."""
        kind: Kind = "tcp" if transport == "tcp" else "udp"
        dialog = OutgoingDialog.create(self.stack, kind, callee=to_did, caller=from_number,
                                       domain=our_address[0])
        dialog.request_uri = f"sip:{to_did}@{our_address[0]}:{our_address[1]}"
        rtp = await RtpSession.open(self.stack.host)
        try:
            invite = dialog.invite(from_number, offer(self.stack.public_host, rtp.port))
            if p_asserted:
                invite.set_header("P-Asserted-Identity", f"<sip:{p_asserted}@sandbox>")
            txn = await self.stack.request(invite, our_address, kind)
            final = await txn.final_response(within)
            return final.status_code
        finally:
            rtp.close()


async def serve_forever(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    phones = PhoneNetwork(host or "127.0.0.1", int(port or 0))
    await phones.start()
    print(f"sandbox phones listening on {phones.address[0]}:{phones.address[1]} (UDP and TCP)",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await phones.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:5070")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.listen))


if __name__ == "__main__":
    main()
