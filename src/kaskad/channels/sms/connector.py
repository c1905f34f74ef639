"""An SMPP 3.4 connector to one upstream SMSC: a pool of binds over aiosmpplib, with our own
window (max outstanding submit_sm per bind) and throughput limit in front of it.

aiosmpplib keeps the session (bind, enquire_link, reconnect with backoff, unbind) and hands every
PDU it receives to a hook; the hook resolves our waiting submit or passes a receipt / MO on.
Parts are made by kaskad.domain.sms and sent pre-encoded (UDH included), so aiosmpplib's own
splitting and payload moving never apply. Throttling answers (ESME_RTHROTTLED, ESME_RMSGQFUL)
slow the sender down and the same part is submitted again; they never fail a message.

A deliver_sm (receipt or MO) is acknowledged only once it is stored: the sinks hand back the
future of its write, and its deliver_sm_resp goes out when that completes (ESME_RSYSERR if the
write failed, so the SMSC delivers it again). The receive loop does not wait for it; SMPP
lets responses go out in any order. A crash before the commit leaves the deliver_sm
unanswered, and the SMSC sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiosmpplib import ESME, NPI, TON, BindMode, PhoneNumber, SubmitSm
from aiosmpplib import esme as esme_module
from aiosmpplib.correlator import SimpleCorrelator
from aiosmpplib.hook import AbstractHook
from aiosmpplib.protocol import DeliverSmResp, SubmitSmResp
from aiosmpplib.retrytimer import SimpleExponentialBackoff
from aiosmpplib.state import SmppCommand, SmppCommandStatus

from kaskad.config import ConnectorSettings
from kaskad.domain.dlr import ESM_CLASS_RECEIPT, Receipt, receipt_from_pdu
from kaskad.domain.smpp import UDHI, SubmitVerdict, classify_status, status_name
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
            log_id = getattr(smpp_message, "log_id", "")
            message_id = getattr(smpp_message, "message_id", "") or None
            self.bind.resolve(log_id, status, message_id)

    async def send_error(self, smpp_message: Any, error: Exception, client_id: str) -> None:
        self.bind.fail(getattr(smpp_message, "log_id", ""), f"not sent: {error!r}")


class _Correlator(SimpleCorrelator):
    """aiosmpplib's correlator without its receipt bookkeeping: receipts are matched by our
    storage, so remembering every submitted message for them only cost memory and CPU."""

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        return None

    _swept_at = 0.0

    async def _remove_expired(self) -> None:
        """The library sweeps its whole store on every put and get; once a second is enough
        (our window's own timeout answers a submit whose response never comes)."""
        now = time.monotonic()
        if now - self._swept_at >= 1.0:
            self._swept_at = now
            await super()._remove_expired()


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
    _acks: set[asyncio.Task[None]]

    async def _handle_request(self, pdu: bytes, header: Any) -> Any:
        if header.smpp_command != SmppCommand.DELIVER_SM or self.on_deliver_sm is None:
            return await super()._handle_request(pdu, header)
        stored = self.on_deliver_sm(pdu)
        sequence = header.sequence_num
        if stored is None:  # nothing to keep (undecodable, or no MO sink): acknowledged now
            await self._send_data(DeliverSmResp(sequence))
            return None  # falsy: the library sends no answer of its own
        if not hasattr(self, "_acks"):
            self._acks = set()
        task = asyncio.create_task(self._ack_when_stored(stored, sequence))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)
        return None

    async def _ack_when_stored(self, stored: asyncio.Future[Any], sequence: int) -> None:
        status = SmppCommandStatus.ESME_ROK
        try:
            await asyncio.shield(stored)
        except Exception:  # the sink logged it; the SMSC will send it again
            status = SmppCommandStatus.ESME_RSYSERR
        with contextlib.suppress(Exception):  # the session is gone: the SMSC resends anyway
            await self._send_data(DeliverSmResp(sequence, command_status=status))

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


class _Bind:
    """One SMPP session and the submits waiting for its answers."""

    def __init__(self, connector: SmppConnector, index: int) -> None:
        s = connector.settings
        self.connector = connector
        self.window = asyncio.Semaphore(s.window)
        self.pending: dict[str, asyncio.Future[tuple[int, str | None]]] = {}
        self.esme = _Esme(
            smsc_host=s.host, smsc_port=s.port, system_id=s.system_id, password=s.password,
            system_type=s.system_type, bind_mode=BindMode.TRANSCEIVER,
            client_id=f"{s.name}-{index}", enquire_link_interval=float(s.enquire_link_s),
            hook=_Hook(self), log_level=logging.WARNING, socket_timeout=10.0,
            retry_timer=SimpleExponentialBackoff(min_delay=200, max_increases=6),
            correlator=_Correlator(s.system_id))
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
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connector stopped"))

    def resolve(self, log_id: str, status: int, message_id: str | None) -> None:
        future = self.pending.get(log_id)
        if future is not None and not future.done():
            future.set_result((status, message_id))

    def fail(self, log_id: str, detail: str) -> None:
        future = self.pending.get(log_id)
        if future is not None and not future.done():
            future.set_exception(ConnectionError(detail))

    async def submit(self, part: Part, log_id: str) -> tuple[int, str | None]:
        s = self.connector.settings
        message = SubmitSm(
            short_message="-", log_id=log_id,
            source=PhoneNumber(part.source, TON(s.source_ton), NPI(s.source_npi)),
            destination=PhoneNumber(part.destination, TON(s.dest_ton), NPI(s.dest_npi)),
            esm_class=UDHI if part.concatenated else 0, registered_delivery=1,
            encoding="ucs2" if part.encoding is Encoding.UCS2 else "gsm0338")
        message.set_encoded_message(part.payload)
        future: asyncio.Future[tuple[int, str | None]] = \
            asyncio.get_running_loop().create_future()
        async with self.window:  # our window: at most `window` submits await an answer
            self.pending[log_id] = future
            try:
                await self.esme.broker.enqueue(message)
                return await asyncio.wait_for(future, s.submit_timeout_s)
            finally:
                self.pending.pop(log_id, None)


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
        self._ids = itertools.count(1)
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
                status, message_id = await bind.submit(part, f"{self.name}-{next(self._ids)}")
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
