"""Outgoing calls through a trunk: the voice-code call and the flash call.

Both place an INVITE through the trunk's outbound proxy, answer a 401/407 once with digest
credentials, and end in a CallResult the channel adapters map onto the cascade's outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from enum import StrEnum

import structlog
from aiosipua.message import SipRequest, SipResponse

from kaskad.channels.telephony import prompts
from kaskad.channels.telephony.dialog import OutgoingDialog
from kaskad.channels.telephony.numbers import flash_caller_id
from kaskad.channels.telephony.rtp import RtpSession, packetise
from kaskad.channels.telephony.sdp import offer, remote_audio
from kaskad.channels.telephony.settings import TrunkSettings
from kaskad.channels.telephony.stack import SipStack
from kaskad.channels.telephony.transactions import ClientTransaction, ServerTransaction
from kaskad.domain.channels import Outcome

log = structlog.get_logger(__name__)


class CallEnd(StrEnum):
    ANSWERED = "answered"  # voice: answered and the prompt played
    RANG = "rang"  # flash: the phone rang (or answered) with our caller id
    HUNG_UP_EARLY = "hung_up_early"  # answered, but hung up before one full prompt
    BUSY = "busy"
    REJECTED = "rejected"
    NO_ANSWER = "no_answer"
    NOT_FOUND = "not_found"
    NETWORK = "network"  # transport error, timeout, 5xx, unanswerable auth


@dataclass(slots=True)
class CallResult:
    delivered: bool
    end: CallEnd
    status: int | None  # the final SIP status (None when the network never answered)
    call_id: str
    caller_id: str = ""
    packets_sent: int = 0
    detail: str = ""

    @property
    def outcome(self) -> Outcome:
        """The cascade's word for this end; only network trouble is worth retrying."""
        if self.delivered:
            return Outcome.DELIVERED
        if self.end is CallEnd.NETWORK:
            return Outcome.REJECTED_TEMPORARY
        if self.end is CallEnd.NOT_FOUND:
            return Outcome.REJECTED_PERMANENT
        return Outcome.NOT_DELIVERED


def end_for_status(status: int) -> CallEnd:
    """How a final failure status ends a call (RFC 3261 §21)."""
    if status in (486, 600):
        return CallEnd.BUSY
    if status in (404, 484, 604):
        return CallEnd.NOT_FOUND
    if status in (408, 480, 487):
        return CallEnd.NO_ANSWER
    if status in (401, 407) or (status >= 500 and status not in (600, 603)):
        return CallEnd.NETWORK
    return CallEnd.REJECTED


class CallPacer:
    """At most `per_second` call attempts per second on one trunk (carriers enforce CPS)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            slot = max(now, self._next)
            self._next = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)


class SipCaller:
    """Places voice-code and flash calls through one trunk on a running SipStack."""

    def __init__(self, stack: SipStack, trunk: TrunkSettings, *,
                 rng: random.Random | None = None) -> None:
        self.stack = stack
        self.trunk = trunk
        self.rng = rng or random.Random()
        self.pacer = CallPacer(trunk.calls_per_second)

    @property
    def proxy(self) -> tuple[str, int]:
        return self.trunk.proxy.as_tuple()

    async def voice_call(self, number: str, code: str, lang: str = "ru") -> CallResult:
        """Call, play the code twice as PCMU, hang up. Delivered = answered and played."""
        payloads = packetise(prompts.assemble(code, lang))
        caller = self.trunk.voice_caller or "kaskad"
        return await self._call(number, caller, self.trunk.ring_timeout, payloads=payloads)

    async def flash_call(self, number: str, code: str) -> CallResult:
        """Ring from a caller id ending in the code, then cancel. Delivered = it rang."""
        if self.trunk.flash_range is None:
            raise ValueError(f"trunk {self.trunk.name} has no flash-call number range")
        caller = flash_caller_id(self.trunk.flash_range, code, self.rng)
        return await self._call(number, caller, self.trunk.flash_timeout, payloads=None)

    async def _call(self, number: str, caller: str, ring_timeout: float,
                    payloads: list[bytes] | None) -> CallResult:
        await self.pacer.wait()
        rtp = await RtpSession.open(self.stack.host)
        dialog = OutgoingDialog.create(self.stack, self.trunk.transport, callee=number,
                                       caller=self.trunk.format_caller(caller),
                                       domain=self.trunk.sip_domain)
        try:
            return await _Attempt(self, dialog, rtp, caller, ring_timeout, payloads).run()
        finally:
            rtp.close()
            self.stack.dialogs.pop(dialog.call_id, None)


class _Attempt:
    """One call from INVITE to its end; `payloads` None means a flash call."""

    def __init__(self, caller: SipCaller, dialog: OutgoingDialog, rtp: RtpSession,
                 caller_id: str, ring_timeout: float, payloads: list[bytes] | None) -> None:
        self.caller = caller
        self.stack = caller.stack
        self.dialog = dialog
        self.rtp = rtp
        self.caller_id = caller_id
        self.ring_timeout = ring_timeout
        self.payloads = payloads
        self.rang = False
        self.hangup = asyncio.Event()

    def result(self, delivered: bool, end: CallEnd, status: int | None,
               detail: str = "") -> CallResult:
        log.info("sip.call_ended", call_id=self.dialog.call_id, end=end.value, status=status,
                 flash=self.payloads is None)
        return CallResult(delivered, end, status, self.dialog.call_id, self.caller_id,
                          self.rtp.sent, detail)

    async def run(self) -> CallResult:
        invite = self.dialog.invite(self.caller_id, offer(self.stack.public_host, self.rtp.port))
        try:
            txn = await self.stack.request(invite, self.caller.proxy, self.dialog.kind)
        except OSError as exc:
            return self.result(False, CallEnd.NETWORK, None, f"cannot reach the proxy: {exc}")
        self.stack.dialogs[self.dialog.call_id] = self._in_dialog
        final = await self._until_final(txn)
        if final.status_code in (401, 407):
            trunk = self.caller.trunk
            retry = self.dialog.authorised(txn.request, final, trunk.username, trunk.password)
            if retry is None:
                return self.result(False, CallEnd.NETWORK, final.status_code, "auth refused")
            txn = await self.stack.request(retry, self.caller.proxy, self.dialog.kind)
            final = await self._until_final(txn)
        if txn.timed_out:
            return self.result(False, CallEnd.NETWORK, final.status_code, "no answer at all")
        if final.status_code >= 300:
            end = end_for_status(final.status_code)
            if self.payloads is None and self.rang and final.status_code == 487:
                return self.result(True, CallEnd.RANG, 487)
            return self.result(False, end, final.status_code, final.reason_phrase)
        return await self._answered(txn.request, final)

    async def _until_final(self, txn: ClientTransaction) -> SipResponse:
        """Wait for the final answer; CANCEL on ringing (flash) or when the ring time is up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ring_timeout
        cancelled = False
        while True:
            try:
                response = await txn.next_response(None if cancelled else
                                                   max(0.0, deadline - loop.time()))
            except TimeoutError:
                cancelled = await self._cancel(txn)
                if not cancelled:  # nothing provisional: wait for timer B's stand-in 408
                    return await txn.final_response()
                continue
            if response.status_code >= 200:
                return response
            if response.status_code in (180, 183):
                self.rang = True
                if self.payloads is None and not cancelled:
                    cancelled = await self._cancel(txn)

    async def _cancel(self, txn: ClientTransaction) -> bool:
        if not txn.provisional_seen:
            return False  # RFC 3261 §9.1: no CANCEL before a provisional response
        cancel = self.dialog.cancel(txn.request)
        await self.stack.request(cancel, self.caller.proxy, self.dialog.kind)
        return True

    async def _answered(self, invite: SipRequest, ok: SipResponse) -> CallResult:
        ack = self.dialog.confirm(invite, ok)
        self.stack.send_raw(ack, self.caller.proxy, self.dialog.kind)
        self.stack.remember_2xx_ack(self.dialog.call_id, ack, self.caller.proxy,
                                    self.dialog.kind)
        if self.payloads is None:  # answered before our CANCEL landed: it rang all the same
            await self._bye()
            return self.result(True, CallEnd.RANG, ok.status_code, "answered before cancel")
        remote = remote_audio(ok.body)
        if remote is None:
            await self._bye()
            return self.result(False, CallEnd.REJECTED, ok.status_code, "no usable PCMU answer")
        played = await self._play(self.payloads, remote)
        if not self.hangup.is_set():
            await self._bye()
        needed = len(self.payloads) if not self.hangup.is_set() else len(self.payloads) // 2
        if played >= needed:
            return self.result(True, CallEnd.ANSWERED, ok.status_code)
        return self.result(False, CallEnd.HUNG_UP_EARLY, ok.status_code,
                           f"{played} of {len(self.payloads)} packets played")

    async def _play(self, payloads: list[bytes], remote: tuple[str, int]) -> int:
        """Stream the prompt; stops early if the callee hangs up. Returns packets sent."""
        player = asyncio.ensure_future(self.rtp.play(payloads, remote))
        hangup = asyncio.ensure_future(self.hangup.wait())
        await asyncio.wait({player, hangup}, return_when=asyncio.FIRST_COMPLETED)
        for task in (player, hangup):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return self.rtp.sent

    async def _bye(self) -> None:
        try:
            txn = await self.stack.request(self.dialog.bye(), self.caller.proxy,
                                           self.dialog.kind)
            await txn.final_response(self.stack.timers.transaction_timeout + 1)
        except (OSError, TimeoutError) as exc:
            log.warning("sip.bye_failed", call_id=self.dialog.call_id, error=str(exc))

    async def _in_dialog(self, request: SipRequest, txn: ServerTransaction) -> None:
        """Requests the callee sends us during the call: BYE ends it, others are acknowledged."""
        if request.method == "BYE":
            self.hangup.set()
        txn.respond(200)
