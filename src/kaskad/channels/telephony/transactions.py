"""RFC 3261 §17 transactions, the parts aiosipua leaves to the application.

Client side: INVITE and non-INVITE requests are retransmitted over UDP (timers A and E), time
out (B and F), and a non-2xx final answer to an INVITE is ACKed inside the transaction, again for
every retransmission of that answer. Server side: a retransmitted request gets the last response
again instead of reaching the application twice, and a final answer to an INVITE over UDP is
retransmitted (timer G) until its ACK arrives or timer H gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiosipua.message import SipRequest, SipResponse
from aiosipua.utils import generate_tag

Kind = Literal["udp", "tcp"]
Send = Callable[[SipRequest | SipResponse], None]

REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
           400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 407: "Proxy Authentication Required",
           408: "Request Timeout", 481: "Call/Transaction Does Not Exist", 486: "Busy Here",
           487: "Request Terminated", 500: "Server Internal Error", 503: "Service Unavailable",
           603: "Decline"}


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261 timer base values; tests shrink T1 to see retransmissions quickly."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def transaction_timeout(self) -> float:  # timers B, F, H
        return 64 * self.t1


def branch_key(message: SipRequest | SipResponse, method: str) -> str:
    """The transaction id: the top Via branch, or (RFC 2543 peers) Call-ID, CSeq and From tag."""
    vias = message.headers.get("via")
    branch = None
    if vias:
        for param in vias[0].split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "branch":
                branch = value
    if branch and branch.startswith("z9hG4bK"):
        return f"{branch}|{method}"
    from_addr = message.from_addr
    cseq = message.cseq
    return f"{message.call_id}|{cseq.seq if cseq else ''}|{from_addr.tag if from_addr else ''}" \
        f"|{method}"


def response_to(request: SipRequest, status: int, reason: str | None = None, *,
                to_tag: str | None = None) -> SipResponse:
    """A response echoing the request's Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6)."""
    response = SipResponse(status_code=status, reason_phrase=reason or REASONS.get(status, ""))
    for name in ("via", "from", "call-id", "cseq"):
        for value in request.headers.get(name):
            response.add_header(name, value)
    to = request.headers.get_first("to") or ""
    if status > 100 and ";tag=" not in to.replace(" ", ""):
        to = f"{to};tag={to_tag or generate_tag()}"
    response.set_header("To", to)
    return response


def ack_for_failure(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK of a non-2xx final answer: same branch and Request-URI, To from the answer."""
    ack = SipRequest(method="ACK", uri=invite.uri)
    ack.add_header("Via", invite.headers.get("via")[0])
    for name in ("route", "from", "call-id"):
        for value in invite.headers.get(name):
            ack.add_header(name, value)
    ack.set_header("To", response.headers.get_first("to") or invite.headers.get_first("to") or "")
    cseq = invite.cseq
    ack.set_header("CSeq", f"{cseq.seq if cseq else 1} ACK")
    ack.set_header("Max-Forwards", "70")
    return ack


def timeout_response(request: SipRequest) -> SipResponse:
    return response_to(request, 408, "Request Timeout (no answer from the network)")


class ClientTransaction:
    """One request we sent, until its final response (or a timeout stands in for it)."""

    def __init__(self, request: SipRequest, kind: Kind, send: Send, timers: Timers,
                 on_done: Callable[[ClientTransaction], None]) -> None:
        self.request = request
        self.method = request.method
        self.kind = kind
        self.key = branch_key(request, request.method)
        self._send = send
        self._timers = timers
        self._on_done = on_done
        self.responses: asyncio.Queue[SipResponse] = asyncio.Queue()
        self.final: SipResponse | None = None
        self.provisional_seen = False
        self.timed_out = False  # the final response is our timer B/F stand-in, not the peer's
        self.ack: SipRequest | None = None
        self._timer = asyncio.get_running_loop().create_task(self._run_timers())

    async def _run_timers(self) -> None:
        """Retransmit over UDP with doubling intervals; stand in a 408 when nothing answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timers.transaction_timeout
        interval = self._timers.t1
        while self.final is None:
            if self.method == "INVITE" and self.provisional_seen:
                return  # the TU's ring timeout (then CANCEL) takes over
            wait = min(interval, deadline - loop.time())
            if wait <= 0:
                self.timed_out = True
                self.on_response(timeout_response(self.request))
                return
            await asyncio.sleep(wait)
            if self.final is None and self.kind == "udp" and loop.time() < deadline and not (
                    self.method == "INVITE" and self.provisional_seen):
                self._send(self.request)
            interval = interval * 2 if self.method == "INVITE" else min(interval * 2,
                                                                         self._timers.t2)

    def on_response(self, response: SipResponse) -> None:
        if response.status_code < 200:
            if self.final is None:
                self.provisional_seen = True
                self.responses.put_nowait(response)
            return
        if self.final is not None:  # a retransmitted final answer
            if self.ack is not None:
                self._send(self.ack)
            return
        self.final = response
        if self.method == "INVITE" and response.status_code >= 300:
            self.ack = ack_for_failure(self.request, response)
            self._send(self.ack)
        self.responses.put_nowait(response)
        self._timer.cancel()
        self._on_done(self)

    async def next_response(self, within: float | None = None) -> SipResponse:
        async with asyncio.timeout(within):
            return await self.responses.get()

    async def final_response(self, within: float | None = None) -> SipResponse:
        async with asyncio.timeout(within):
            while True:
                response = await self.responses.get()
                if response.status_code >= 200:
                    return response

    def close(self) -> None:
        self._timer.cancel()


class ServerTransaction:
    """One request we received: remembers our last answer for retransmissions of the request."""

    def __init__(self, request: SipRequest, kind: Kind, send: Send, timers: Timers) -> None:
        self.request = request
        self.kind = kind
        self.key = branch_key(request, request.method)
        self._send = send
        self._timers = timers
        self.last_response: SipResponse | None = None
        self.acked = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.to_tag = generate_tag()
        self.source: tuple[str, int] = ("", 0)  # where the request came from
        self._retransmit: asyncio.Task[None] | None = None

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status_code >= 200

    def respond(self, status: int, reason: str | None = None,
                headers: dict[str, str] | None = None, body: bytes = b"",
                content_type: str = "application/sdp") -> SipResponse | None:
        """Send an answer unless a final one went already (then the late one is dropped)."""
        if self.final_sent:
            return None
        response = response_to(self.request, status, reason, to_tag=self.to_tag)
        for name, value in (headers or {}).items():
            response.set_header(name, value)
        if body:
            response.set_header("Content-Type", content_type)
            response.body = body
        self.last_response = response
        self._send(response)
        if status >= 200 and self.request.method == "INVITE" and self.kind == "udp":
            self._retransmit = asyncio.get_running_loop().create_task(self._timer_g())
        return response

    def on_retransmission(self) -> None:
        if self.last_response is not None:
            self._send(self.last_response)

    def on_ack(self) -> None:
        self.acked.set()
        if self._retransmit is not None:
            self._retransmit.cancel()

    async def _timer_g(self) -> None:
        """Resend the final answer until the ACK comes: the answer may have been lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timers.transaction_timeout
        interval = self._timers.t1
        while not self.acked.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(interval, deadline - loop.time())):
                    await self.acked.wait()
            if not self.acked.is_set() and loop.time() < deadline and self.last_response:
                self._send(self.last_response)
            interval = min(interval * 2, self._timers.t2)

    def close(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
