"""An SMPP 3.4 connector to one upstream SMSC: a pool of binds over aiosmpplib, with our own
window (max outstanding submit_sm per bind) and throughput limit in front of it.

aiosmpplib keeps the session (bind, enquire_link, reconnect with backoff, unbind) and hands every
PDU it receives to a hook; the hook resolves our waiting submit or passes a receipt / MO on.
Our submit_sm and deliver_sm_resp are written by us on the library's stream, with its sequence
numbers and correlator, without its send queue (see _Bind).
Parts are made by kaskad.domain.sms and sent pre-encoded (UDH included), so aiosmpplib's own
splitting and payload moving never apply. Throttling answers (ESME_RTHROTTLED, ESME_RMSGQFUL)
slow the sender down and the same part is submitted again; they never fail a message.

A deliver_sm (receipt or MO) is acknowledged only once it is stored: the sinks hand back the
future of its write, and its deliver_sm_resp goes out when that completes (ESME_RSYSERR if the
write failed, so the SMSC delivers it again), on the connection it came in on. The receive
loop does not wait for it; SMPP lets responses go out in any order. A crash before the commit
leaves the deliver_sm unanswered, and the SMSC sends it again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiosmpplib import ESME, BindMode, SubmitSm
from aiosmpplib import esme as esme_module
from aiosmpplib.correlator import SimpleCorrelator
from aiosmpplib.hook import AbstractHook
from aiosmpplib.protocol import DeliverSmResp, SubmitSmResp
from aiosmpplib.retrytimer import SimpleExponentialBackoff
from aiosmpplib.state import SmppCommand, SmppCommandStatus

from kaskad.config import ConnectorSettings
from kaskad.domain.dlr import ESM_CLASS_RECEIPT, Receipt, receipt_from_pdu
from kaskad.domain.smpp import (
    SUBMIT_SM,
    UDHI,
    SubmitVerdict,
    classify_status,
    pdu,
    status_name,
    submit_sm_body,
)
from kaskad.domain.sms import Encoding

log = structlog.get_logger(__name__)

DELIVER_SM = 0x00000005
SUBMIT_SM_RESP = 0x80000004
GENERIC_NACK = 0x80000000


@dataclass(frozen=True, slots=True)
class Part:
    source: str
    destination: str  # E.164 digits
    encoding: Encoding
    payload: bytes  # encoded text, UDH included when `concatenated`
    concatenated: bool = False


@dataclass(frozen=True, slots=True)
class SubmitResult:
    verdict: SubmitVerdict
    message_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MobileOriginated:
    source: str
    destination: str
    data_coding: int
    short_message: bytes


# (connector name, receipt / MO) -> the future of its storage, or None if nothing is stored
ReceiptSink = Callable[[str, Receipt], "asyncio.Future[Any] | None"]
MoSink = Callable[[str, MobileOriginated], "asyncio.Future[Any] | None"]


class _RateLimit:
    """Spaces submits evenly (a leaky bucket with no burst)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _Hook(AbstractHook):
    def __init__(self, bind: _Bind) -> None:
        self.bind = bind

    async def sending(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        return None

    async def received(self, smpp_message: Any, pdu: bytes, client_id: str) -> None:
        if len(pdu) < 16:
            return
        command_id = int.from_bytes(pdu[4:8], "big")
        if command_id == DELIVER_SM:
            return  # taken care of, and answered, by _Esme._handle_request
        if isinstance(smpp_message, SubmitSmResp) or command_id == GENERIC_NACK:
            status = int.from_bytes(pdu[8:12], "big")
            message_id = getattr(smpp_message, "message_id", "") or None
            self.bind.resolve(int.from_bytes(pdu[12:16], "big"), status, message_id)

    async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
        sequence = getattr(smpp_message, "sequence_num", None)
        if isinstance(sequence, int):
            self.bind.fail(sequence, f"not sent: {error!r}")


class _Correlator(SimpleCorrelator):
    """aiosmpplib's correlator cut down to what its session needs: each request by sequence
    number until its response comes. Receipts are matched by our storage, expiry is our
    window's timer (`_Bind`), and our parts carry no SAR options, so the library's receipt,
    expiry and segment bookkeeping only cost memory and CPU. `store` is synchronous, for
    the window's sends."""

    LIMIT = 4096  # requests remembered at most (above any window; a lost answer ages out)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._requests: dict[int, Any] = {}

    def store(self, message: Any) -> None:
        self._requests[message.sequence_num] = message
        while len(self._requests) > self.LIMIT:
            del self._requests[next(iter(self._requests))]

    def forget(self, sequence: int) -> None:
        self._requests.pop(sequence, None)

    async def put(self, smpp_message: Any) -> None:  # the library's own requests
        self.store(smpp_message)

    async def get(self, response: Any) -> Any:
        return self._requests.pop(response.sequence_num, None)

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        return None


def _acknowledge(writer: asyncio.StreamWriter | None, sequence: int,
                 stored: asyncio.Future[Any]) -> None:
    """A deliver_sm's answer once its write is over: ESME_ROK when it is stored, ESME_RSYSERR
    when the write failed (the sink logged why), so the SMSC delivers it again."""
    ok = not stored.cancelled() and stored.exception() is None
    _answer_deliver_sm(writer, sequence,
                       SmppCommandStatus.ESME_ROK if ok else SmppCommandStatus.ESME_RSYSERR)


def _answer_deliver_sm(writer: asyncio.StreamWriter | None, sequence: int,
                       status: SmppCommandStatus) -> None:
    """Written at once on the connection the deliver_sm came in on (no task, no queue: one
    per receipt was a measurable share of the client's CPU). If that connection is gone,
    nothing is sent: a sequence number means nothing on another session, and the SMSC
    delivers an unanswered deliver_sm again."""
    if writer is not None and not writer.transport.is_closing():
        writer.write(DeliverSmResp(sequence, command_status=status).pdu())


def _any_status(cls: type[SmppCommandStatus], value: object) -> SmppCommandStatus | None:
    """A command_status aiosmpplib does not list (SMPP 3.4 leaves 0x400-0x4FF to SMSC vendors,
    and SMSCs use others) as a member of its own: the library's header parser raised on it,
    which ended the session, and the submit it answered waited for its timeout."""
    if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        return None
    member = int.__new__(cls, value)
    member._name_ = f"STATUS_{value:#010x}"
    member._value_ = value
    return member


SmppCommandStatus._missing_ = classmethod(_any_status)  # type: ignore[assignment]

_OPEN_CONNECTION = asyncio.open_connection.__code__


def tls_context(s: ConnectorSettings) -> ssl.SSLContext:
    """The client side of SMPP over TLS: the system's CAs (or `tls_ca_file`), the host name
    checked, unless `tls_verify` is off (a private SMSC with a self-signed certificate)."""
    context = ssl.create_default_context(cafile=s.tls_ca_file or None)
    if not s.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Esme(ESME):
    """aiosmpplib's ESME with three repairs: it closes the streams it lets go of (it half-closes
    on unbind and replaces them on reconnect, which leaked a socket each time); it leaves
    deliver_sm to us instead of decoding text, dates and correlations that we do not use
    (measured: most of the client's CPU per receipt); and it answers a deliver_sm once it is
    stored, not as soon as it is read."""

    on_deliver_sm: Callable[[bytes], asyncio.Future[Any] | None] | None = None

    async def _handle_request(self, pdu: bytes, header: Any) -> Any:
        if header.smpp_command != SmppCommand.DELIVER_SM or self.on_deliver_sm is None:
            return await super()._handle_request(pdu, header)
        stored = self.on_deliver_sm(pdu)
        writer, sequence = self._writer, header.sequence_num
        if stored is None:  # nothing to keep (undecodable, or no MO sink): acknowledged now
            _answer_deliver_sm(writer, sequence, SmppCommandStatus.ESME_ROK)
        else:
            stored.add_done_callback(functools.partial(_acknowledge, writer, sequence))
        return None  # falsy: the library sends no answer of its own

    tls: ssl.SSLContext | None = None  # set per bind: SMPP over TLS (aiosmpplib has none)

    async def connect(self) -> None:
        old = self._writer  # type: ignore[has-type]
        if old is not None:
            old.close()
        await super().connect()

    async def _socket_operation(self, coro: Any) -> Any:
        """The library opens plain TCP with no way to pass a TLS context: its connect's
        open_connection is swapped for the same call over TLS (bind and all else unchanged)."""
        if self.tls is not None and getattr(coro, "cr_code", None) is _OPEN_CONNECTION:
            coro.close()
            coro = asyncio.open_connection(self.smsc_host, self.smsc_port,
                                           limit=esme_module._NETWORK_BUFFER_LIMIT, ssl=self.tls)
        return await super()._socket_operation(coro)

    async def _disconnect(self) -> None:
        writer = self._writer
        await super()._disconnect()
        if writer is not None:
            writer.close()


class _Sent:
    """What the library's correlator keeps of a submit_sm we wrote: enough for its response
    handling to see a submit_sm_resp answers a submit_sm (our hook matches the rest by
    sequence number)."""

    __slots__ = ("sequence_num",)
    smpp_command = SmppCommand.SUBMIT_SM

    def __init__(self, sequence: int) -> None:
        self.sequence_num = sequence


class _Submit:
    """A submit_sm in our window: queued for a place in it, then sent and awaiting its answer."""

    __slots__ = ("body", "future", "sequence", "timer")

    def __init__(self, body: bytes, future: asyncio.Future[tuple[int, str | None]]) -> None:
        self.body = body  # the PDU without its header (the sequence number comes when sent)
        self.future = future
        self.timer: asyncio.TimerHandle | None = None  # its timeout: queued, then sent
        self.sequence = -1  # assigned when sent


class _Bind:
    """One SMPP session and our window over it: at most `window` submit_sm awaiting their
    answers; the rest queue in order.

    The window is driven by calls, not tasks: a submit is written in its caller's turn when
    there is room, and each answer (read by the library's receive loop) frees its place and
    writes the next queued submit before the loop moves on. Through a semaphore, the library's
    queue and its sender task, an answer reached the next submit_sm after four turns of the
    event loop, and with one bind the window is what bounds the rate.
    """

    REBIND_POLL_S = 0.05  # while the session is down, how often queued submits look again

    def __init__(self, connector: SmppConnector, index: int) -> None:
        s = connector.settings
        self.connector = connector
        self.window = s.window
        self.timeout_s = s.submit_timeout_s
        self.pending: dict[int, _Submit] = {}  # sent, by sequence number
        self.queue: collections.deque[_Submit] = collections.deque()
        self._poll: asyncio.TimerHandle | None = None
        self.correlator = _Correlator(s.system_id)
        self.esme = _Esme(
            smsc_host=s.host, smsc_port=s.port, system_id=s.system_id, password=s.password,
            system_type=s.system_type, bind_mode=BindMode.TRANSCEIVER,
            client_id=f"{s.name}-{index}", enquire_link_interval=float(s.enquire_link_s),
            hook=_Hook(self), log_level=logging.WARNING, socket_timeout=10.0,
            retry_timer=SimpleExponentialBackoff(min_delay=200, max_increases=6),
            correlator=self.correlator)
        self.esme.tls = tls_context(s) if s.tls else None
        self.esme.on_deliver_sm = connector.on_deliver_sm
        self.task: asyncio.Task[None] | None = None

    @property
    def bound(self) -> bool:
        return self.esme._bound.is_set()  # aiosmpplib exposes no public flag

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"smpp-{self.esme.client_id}")

    async def _run(self) -> None:
        try:
            await self.esme.start()  # binds, then reconnects with backoff until stopped
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the library gave up: the connector reports it down
            log.error("SMPP bind stopped", bind=self.esme.client_id, error=repr(exc))

    async def stop(self) -> None:
        writer = self.esme._writer
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(self.esme.stop(), 3)  # unbind cleanly
            except Exception as exc:
                log.warning("SMPP unbind failed", bind=self.esme.client_id, error=repr(exc))
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        for entry in [*self.pending.values(), *self.queue]:
            self._settle(entry, ConnectionError("connector stopped"))
        self.pending.clear()
        self.queue.clear()

    async def submit(self, part: Part) -> tuple[int, str | None]:
        """(command_status, message_id) of the SMSC's answer. TimeoutError when no place in
        the window came within `submit_timeout_s` (nothing sent) or no answer within that
        time of sending; ConnectionError when it could not be sent."""
        s = self.connector.settings
        body = submit_sm_body(
            source=part.source, source_ton=s.source_ton, source_npi=s.source_npi,
            destination=part.destination, dest_ton=s.dest_ton, dest_npi=s.dest_npi,
            esm_class=UDHI if part.concatenated else 0, registered_delivery=1,
            data_coding=8 if part.encoding is Encoding.UCS2 else 0, short_message=part.payload)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, str | None]] = loop.create_future()
        entry = _Submit(body, future)
        entry.timer = loop.call_later(self.timeout_s, self._expire, entry)
        self.queue.append(entry)
        self._pump()
        # A caller cancelled while it waits leaves its entry: a queued one is skipped, a sent
        # one keeps its place until its answer or its timeout, as the SMSC still holds it.
        return await future

    def _pump(self) -> None:
        """Send queued submits while the window has room and the session is up."""
        while self.queue and self.queue[0].future.done():  # timed out while queued
            self._settle(self.queue.popleft(), TimeoutError())
        if not self.queue or len(self.pending) >= self.window:
            return
        writer = self.esme._writer
        if not self.bound or writer is None or writer.transport.is_closing():
            if self._poll is None:
                self._poll = asyncio.get_running_loop().call_later(self.REBIND_POLL_S,
                                                                   self._repump)
            return
        esme = self.esme
        while self.queue and len(self.pending) < self.window:
            entry = self.queue.popleft()
            if entry.future.done():  # timed out in the queue, or its caller went away
                self._settle(entry, TimeoutError())
                continue
            entry.sequence = esme.sequence_generator.next_sequence()
            self.correlator.store(_Sent(entry.sequence))
            writer.write(pdu(SUBMIT_SM, entry.sequence, entry.body))
            self.pending[entry.sequence] = entry
            self._rearm(entry)

    def _rearm(self, entry: _Submit) -> None:
        """A sent submit has `submit_timeout_s` from now for its answer."""
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = asyncio.get_running_loop().call_later(self.timeout_s, self._expire, entry)

    def _repump(self) -> None:
        self._poll = None
        self._pump()

    def _expire(self, entry: _Submit) -> None:
        if self.pending.get(entry.sequence) is entry:
            del self.pending[entry.sequence]
            self.correlator.forget(entry.sequence)
            self._pump()
        if not entry.future.done():
            entry.future.set_exception(TimeoutError())

    @staticmethod
    def _settle(entry: _Submit, outcome: tuple[int, str | None] | Exception) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.future.done():
            return
        if isinstance(outcome, Exception):
            entry.future.set_exception(outcome)
        else:
            entry.future.set_result(outcome)

    def resolve(self, sequence: int, status: int, message_id: str | None) -> None:
        """The answer to a submit_sm (or a generic_nack): its place goes to the next."""
        self._finish(sequence, (status, message_id))

    def fail(self, sequence: int, detail: str) -> None:
        self._finish(sequence, ConnectionError(detail))

    def _finish(self, sequence: int, outcome: tuple[int, str | None] | Exception) -> None:
        entry = self.pending.pop(sequence, None)
        if entry is not None:
            self._pump()
            self._settle(entry, outcome)


@dataclass
class ConnectorStats:
    submitted: int = 0
    accepted: int = 0
    throttled: int = 0
    failed: int = 0
    receipts: int = 0
    mo: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class SmppConnector:
    def __init__(self, settings: ConnectorSettings, *, on_receipt: ReceiptSink,
                 on_mo: MoSink | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.on_receipt = on_receipt
        self.on_mo = on_mo
        self.binds = [_Bind(self, i) for i in range(settings.binds)]
        self._rate = _RateLimit(settings.throughput)
        self._turn = itertools.cycle(range(settings.binds))
        self.stats = ConnectorStats()

    @property
    def up(self) -> bool:
        return any(b.bound for b in self.binds)

    async def start(self) -> None:
        for bind in self.binds:
            bind.start()

    async def wait_bound(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.up:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(b.stop() for b in self.binds))

    def _pick(self) -> _Bind | None:
        for _ in range(len(self.binds)):
            bind = self.binds[next(self._turn)]
            if bind.bound:
                return bind
        return None

    async def submit(self, part: Part) -> SubmitResult:
        """One part, answered: accepted with the SMSC's id, or why not. Throttled parts are
        submitted again after a pause (doubling, up to `max_throttle_wait_s` in all)."""
        pause, waited = 0.05, 0.0
        while True:
            bind = self._pick()
            if bind is None:
                return SubmitResult(SubmitVerdict.TEMPORARY, None, f"{self.name}: not bound")
            await self._rate.wait()
            self.stats.submitted += 1
            try:
                status, message_id = await bind.submit(part)
            except (TimeoutError, ConnectionError) as exc:
                self.stats.failed += 1
                return SubmitResult(SubmitVerdict.TEMPORARY, None,
                                    f"{self.name}: {type(exc).__name__} {exc}".strip())
            verdict = classify_status(status)
            name = status_name(status)
            self.stats.by_status[name] = self.stats.by_status.get(name, 0) + 1
            if verdict is not SubmitVerdict.THROTTLED:
                if verdict is SubmitVerdict.ACCEPTED:
                    self.stats.accepted += 1
                    return SubmitResult(verdict, message_id, "accepted")
                self.stats.failed += 1
                return SubmitResult(verdict, None, name)
            self.stats.throttled += 1
            if waited >= self.settings.max_throttle_wait_s:
                return SubmitResult(SubmitVerdict.TEMPORARY, None, f"{name} for {waited:.0f}s")
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 5.0)

    def on_deliver_sm(self, pdu: bytes) -> asyncio.Future[Any] | None:
        """A receipt or an MO message, from a bind's receive loop (must not block): the
        future of its storage, which its deliver_sm_resp waits for."""
        try:
            from smpp34 import decode  # the codec only; our session stays aiosmpplib's

            decoded: Any = decode(pdu)
        except Exception as exc:
            log.warning("undecodable deliver_sm", connector=self.name, error=repr(exc))
            return None
        tlvs = {t.tag: bytes(t.value) for t in decoded.tlvs}
        if decoded.esm_class & 0x3C == ESM_CLASS_RECEIPT:
            receipt = receipt_from_pdu(tlvs, bytes(decoded.short_message))
            if receipt is None:
                log.warning("unparsable delivery receipt", connector=self.name)
                return None
            self.stats.receipts += 1
            return self.on_receipt(self.name, receipt)
        self.stats.mo += 1
        if self.on_mo is None:
            return None
        return self.on_mo(self.name, MobileOriginated(
            decoded.source_addr, decoded.destination_addr, decoded.data_coding,
            bytes(decoded.short_message)))
