"""An SMSC simulator speaking real SMPP 3.4 over loopback, built on smpp34's `Server`.

kaskad's SMPP client (aiosmpplib) is tested against it, so it must behave like a real SMSC,
including the ways real SMSCs misbehave: refused destinations, throttling, lost receipts, a
receipt that overtakes its submit_sm_resp, message ids whose base changes between the
submit_sm_resp (hex) and the receipt (decimal), and connections that vanish. What happens to each
number comes from the sandbox World (last digit) or from explicit SmscRule overrides.

Deliberately independent of kaskad's client (only the receipt format of kaskad.domain.dlr and the
sandbox world are imported): a simulator that shared the client's code would share its bugs too.

What smpp34's Python `Server` cannot do, and how the simulator makes up for it:

- It accepts every bind: its `Esme` events come after the bind_resp, with no password at all. So
  clients connect to a small TCP relay in front of it, which reads each connection's first PDU
  and, when it is a bind with the wrong system_id or password, answers the bind_resp itself
  (ESME_RINVSYSID / ESME_RINVPASWD) and hangs up. A connection whose first PDU is not a bind is
  relayed unchecked (smpp34 then applies the SMPP session rules).
- It cannot report the port it bound, so port 0 would be useless: the relay binds the public port
  (0 works) and smpp34 listens on a free loopback port picked just before.
- It cannot drop a session (only unbind it politely), and `Server.stop()` leaves bound sessions
  open. The relay owns the client sockets, so `drop_connections()` and `stop()` really cut them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import smpp34
from smpp34._smpp34 import (  # the constants are re-exported dynamically, invisible to mypy
    ESME_RINVDSTADR,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    TLV_MESSAGE_PAYLOAD,
)

from kaskad.domain.dlr import (
    ESM_CLASS_RECEIPT,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    MessageState,
    format_receipt,
)
from kaskad.domain.sms import decode_payload
from kaskad.simulators.world import Sms, World

__all__ = ["SentMo", "SmscRule", "SmscSimulator", "SubmittedPart", "bind_refusal", "decode_text",
           "encode_text", "parse_udh", "rule_from_world", "serve_forever", "wants_receipt"]

_log = logging.getLogger(__name__)

SMSC_SYSTEM_ID = "KASKADSIM"  # what the simulator calls itself in bind_resp
GSM_CODEC = "gsm03.38"
ESME_RINVPASWD = 0x0000000E
ESME_RINVSYSID = 0x0000000F
ESM_UDHI = 0x40
IEI_CONCAT_8BIT, IEI_CONCAT_16BIT = 0x00, 0x08
MAX_SHORT_MESSAGE = 254  # longer MO texts travel in message_payload
FIRST_MESSAGE_ID = 0x10000000

RECEIPT_STATES: dict[str, MessageState | None] = {
    "delivered": MessageState.DELIVERED,
    "undeliverable": MessageState.UNDELIVERABLE,
    "expired": MessageState.EXPIRED,
    "rejected": MessageState.REJECTED,
    "none": None,  # the receipt is lost
}
RECEIPT_FORMS = frozenset({"tlv", "text", "both"})
# The receipt's `err:` field; the values only need to be non-zero for failures.
RECEIPT_ERRORS = {MessageState.DELIVERED: "000", MessageState.UNDELIVERABLE: "001",
                  MessageState.EXPIRED: "002", MessageState.REJECTED: "003"}

_HEADER = struct.Struct("!IIII")  # command_length, command_id, command_status, sequence_number
_BIND_COMMANDS = frozenset({0x00000001, 0x00000002, 0x00000009})  # receiver, transmitter, trx
_RESP_BIT = 0x80000000
_MAX_FIRST_PDU = 4096  # a bind is far smaller; anything bigger is relayed unchecked
_RELAY_CHUNK = 65536
_BACKEND_HOST = "127.0.0.1"
_BACKEND_START_ATTEMPTS = 5  # a picked free port can be taken before smpp34 binds it
_POLL_S = 0.005
_DROP_WAIT_S = 5.0  # for smpp34 to notice the dropped sessions


# --------------------------------------------------------------------------- rules


@dataclass
class SmscRule:
    """What the SMSC does with a message to one number."""

    receipt: str = "delivered"  # "delivered" | "undeliverable" | "expired" | "rejected" | "none"
    receipt_delay_s: float | None = None  # None: the simulator's default
    submit_status: int = 0  # non-zero: answer submit_sm with this command_status
    receipt_before_resp: bool = False  # send the receipt BEFORE the submit_sm_resp (a known race)
    receipt_form: str = "both"  # "tlv" | "text" | "both"
    receipt_id_decimal: bool = False  # hex ids in submit_sm_resp, their decimal reading in receipts
    # A long message's parts by sequence number (1-based): each part's own receipt, where it
    # differs from `receipt` (e.g. ("delivered", "undeliverable") loses the second part).
    part_receipts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Fail where the rule is written, not later inside the event loop."""
        for receipt in (self.receipt, *self.part_receipts):
            if receipt not in RECEIPT_STATES:
                raise ValueError(f"unknown receipt {receipt!r}")
        if self.receipt_form not in RECEIPT_FORMS:
            raise ValueError(f"unknown receipt_form {self.receipt_form!r}")


def rule_from_world(world: World, number: str, *, slow_delay_s: float = 1.0) -> SmscRule:
    """The sandbox behaviour of a number (by its last digit) as an SMSC rule."""
    sms = world.behaviour(number).sms
    if sms is Sms.FAILS:
        return SmscRule(receipt="undeliverable")
    if sms is Sms.REJECTED:
        return SmscRule(submit_status=ESME_RINVDSTADR)
    if sms is Sms.SLOW:
        return SmscRule(receipt_delay_s=slow_delay_s)
    return SmscRule()


# --------------------------------------------------------------------------- records


@dataclass
class SubmittedPart:
    """One submit_sm as the simulator received and answered it."""

    session_id: str
    system_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    tlvs: dict[int, bytes]
    message_id: str | None  # None when refused
    status: int  # command_status answered
    udh: tuple[int, int, int] | None  # (reference, total, sequence) of a concatenated part
    text: str  # the part's text, without the UDH


@dataclass
class SentMo:
    """A mobile-originated deliver_sm and the ESME's answer to it."""

    session_id: str
    source: str
    destination: str
    text: str
    data_coding: int
    status: int  # deliver_sm_resp command_status


@dataclass(frozen=True)
class _Receipt:
    """A receipt due to a system_id; its text is completed (done date) when it is sent."""

    system_id: str
    session_id: str  # the submitting session, tried first
    message_id: str  # as written in the receipt
    state: MessageState
    form: str
    source_addr: str  # the message's destination
    source_ton: int
    source_npi: int
    destination_addr: str  # the message's source
    dest_ton: int
    dest_npi: int
    submitted: str  # YYMMDDhhmm
    text: str


# --------------------------------------------------------------------------- decoding


def parse_udh(body: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """(concatenation info, the rest) of a body whose esm_class has UDHI.

    A UDH that does not fit the body is not a UDH: the body is returned whole.
    """
    if not body or 1 + body[0] > len(body):
        return None, body
    header, rest = body[1:1 + body[0]], body[1 + body[0]:]
    concat: tuple[int, int, int] | None = None
    index = 0
    while index + 2 <= len(header):
        iei, length = header[index], header[index + 1]
        value = header[index + 2:index + 2 + length]
        if len(value) < length:
            break
        if iei == IEI_CONCAT_8BIT and length == 3:
            concat = (value[0], value[1], value[2])
        elif iei == IEI_CONCAT_16BIT and length == 4:
            concat = (int.from_bytes(value[:2], "big"), value[2], value[3])
        index += 2 + length
    return concat, rest


def decode_text(data: bytes, data_coding: int) -> str:
    """A part's text; undecodable bytes become U+FFFD instead of failing the submit."""
    return decode_payload(data, data_coding)


def encode_text(text: str) -> tuple[int, bytes]:
    """(data_coding, bytes) for an MO text: GSM 03.38 when it fits the alphabet, else UCS-2."""
    try:
        return 0x00, text.encode(GSM_CODEC)
    except UnicodeEncodeError:
        return 0x08, text.encode("utf-16-be")


def _part_from_event(event: smpp34.SubmitSmEvent, system_id: str) -> SubmittedPart:
    """The recorded form of a submit_sm, before it is answered."""
    tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
    body = event.short_message or tlvs.get(TLV_MESSAGE_PAYLOAD, b"")
    udh: tuple[int, int, int] | None = None
    if event.esm_class & ESM_UDHI:
        udh, body = parse_udh(body)
    return SubmittedPart(
        session_id=event.session_id, system_id=system_id, source_addr=event.source_addr,
        destination_addr=event.destination_addr, data_coding=event.data_coding,
        esm_class=event.esm_class, registered_delivery=event.registered_delivery,
        short_message=event.short_message, tlvs=tlvs, message_id=None, status=ESME_RSYSERR,
        udh=udh, text=decode_text(body, event.data_coding))


def wants_receipt(registered_delivery: int, state: MessageState) -> bool:
    """SMPP 3.4 §5.2.17: bits 0-1 = 01 always, 10 on failure only."""
    wanted = registered_delivery & 0x03
    return wanted == 1 or (wanted == 2 and state is not MessageState.DELIVERED)


# --------------------------------------------------------------------------- the relay


def bind_refusal(pdu: bytes, system_id: str, password: str) -> bytes | None:
    """The bind_resp refusing a bind with the wrong credentials; None to let the PDU through."""
    _, command_id, _, sequence = _HEADER.unpack_from(pdu)
    if command_id not in _BIND_COMMANDS:
        return None
    fields = pdu[_HEADER.size:].split(b"\x00", 2)
    given_id = fields[0].decode("latin-1")
    given_password = fields[1].decode("latin-1") if len(fields) > 1 else None
    if given_id != system_id:
        status = ESME_RINVSYSID
    elif given_password != password:
        status = ESME_RINVPASWD
    else:
        return None
    body = SMSC_SYSTEM_ID.encode("ascii") + b"\x00"  # aiosmpplib reads it even on errors
    return _HEADER.pack(_HEADER.size + len(body), command_id | _RESP_BIT, status, sequence) + body


async def _read_first_pdu(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """(bytes read, whether they are one whole PDU); an implausible length stops early."""
    head = await reader.readexactly(4)
    length = int.from_bytes(head, "big")
    if not _HEADER.size <= length <= _MAX_FIRST_PDU:
        return head, False
    return head + await reader.readexactly(length - 4), True


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until EOF or a broken connection."""
    with contextlib.suppress(OSError):
        while data := await reader.read(_RELAY_CHUNK):
            writer.write(data)
            await writer.drain()


async def _splice(client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                  backend: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    """Relay both ways until either side ends: SMPP has no half-closed connections."""
    tasks = {asyncio.ensure_future(_pipe(client[0], backend[1])),
             asyncio.ensure_future(_pipe(backend[0], client[1]))}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(eq=False)
class _Link:
    """One client connection and, once it got past the bind check, its backend connection."""

    client: asyncio.StreamWriter
    backend: asyncio.StreamWriter | None = None

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.backend) if w is not None]

    def abort(self) -> None:
        """Cut both sockets at once (RST), as a crashing SMSC or a dead network would."""
        for writer in self.writers():
            writer.transport.abort()

    async def close(self) -> None:
        """The normal end: flush what is buffered, then close."""
        for writer in self.writers():
            writer.close()
        for writer in self.writers():
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


# --------------------------------------------------------------------------- the simulator


class SmscSimulator:
    """The SMSC: accepts binds and submit_sm, sends receipts and MO messages, misbehaves on demand.

    Session ids are smpp34's server-side ones (those of `SubmitSmEvent.session_id`), not the ids a
    client sees on its side.
    """

    def __init__(self, *, system_id: str = "kaskad", password: str = "secret",
                 world: World | None = None, receipt_delay_s: float = 0.05,
                 slow_delay_s: float = 1.0, throttle_every: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.system_id = system_id
        self.password = password
        self.world = world
        self.receipt_delay_s = receipt_delay_s
        self.slow_delay_s = slow_delay_s
        self.throttle_every = throttle_every  # >0: every Nth submit_sm is answered ESME_RTHROTTLED
        self._clock = clock
        self.submits: list[SubmittedPart] = []
        self.receipts_sent: list[tuple[str, str, MessageState]] = []
        # (message id, deliver_sm_resp command_status) of each receipt the ESME answered
        self.receipts_answered: list[tuple[str, int]] = []
        self.mo_sent: list[SentMo] = []
        self._rules: dict[str, SmscRule] = {}
        self._esmes: dict[str, smpp34.Esme] = {}
        self._held: list[_Receipt] = []  # due, but no session could take them
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: set[_Link] = set()
        self._link_tasks: set[asyncio.Task[Any]] = set()  # asyncio's own, ended by aborting
        self._closing = False
        self._submit_count = 0
        # Random-ish base: ids differ between runs, so a client cannot match a stale one by luck.
        self._next_id = FIRST_MESSAGE_ID + random.randrange(0x1000000)
        self._server: smpp34.Server | None = None
        self._backend_port = 0
        self._listener: asyncio.Server | None = None
        self._port: int | None = None

    # ----------------------------------------------------------------- rules and views

    def set_rule(self, number: str, rule: SmscRule) -> None:
        self._rules[number] = rule

    def rule(self, number: str) -> SmscRule:
        """The override for the number, else the world's rule for its last digit, else default."""
        if number in self._rules:
            return self._rules[number]
        if self.world is not None and number[-1:] in self.world.rules:
            return rule_from_world(self.world, number, slow_delay_s=self.slow_delay_s)
        return SmscRule()

    @property
    def port(self) -> int | None:
        """The port clients connect to, once started."""
        return self._port

    @property
    def sessions(self) -> list[str]:
        """Bound session ids, in bind order."""
        return list(self._esmes)

    @property
    def held_receipts(self) -> int:
        """Receipts waiting for a session of their system_id that can receive."""
        return len(self._held)

    def messages(self) -> list[list[SubmittedPart]]:
        """Accepted parts grouped into whole messages by UDH reference, in order of arrival.

        Parts of one message share sender, recipient, reference and total; a sequence number
        seen again (a resubmitted part) or a complete group starts a new message.
        """
        groups: list[list[SubmittedPart]] = []
        open_groups: dict[tuple[str, str, str, int, int], list[SubmittedPart]] = {}
        for part in self.submits:
            if part.message_id is None:
                continue
            if part.udh is None:
                groups.append([part])
                continue
            key = (part.system_id, part.source_addr, part.destination_addr, part.udh[0],
                   part.udh[1])
            group = open_groups.get(key)
            if group is None or _closed(group, part):
                group = open_groups[key] = []
                groups.append(group)
            group.append(part)
        return [sorted(g, key=lambda p: p.udh[2] if p.udh else 0) for g in groups]

    async def wait_for(self, predicate: Callable[[], bool],
                       timeout: float = 5.0) -> None:  # noqa: ASYNC109  (the agreed interface)
        """Poll until the predicate holds: tests wait for effects, never for fixed times."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(_POLL_S)

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (port 0: any free port) and return the port clients connect to."""
        self._closing = False
        self._server = await self._start_backend()
        self._spawn(self._pump(self._server))
        self._listener = await asyncio.start_server(self._serve_link, host, port)
        self._port = int(self._listener.sockets[0].getsockname()[1])
        return self._port

    async def stop(self) -> None:
        """Cut every connection, cancel every pending receipt, stop listening."""
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        for link in list(self._links):
            link.abort()
        if self._link_tasks:  # not cancelled: asyncio's stream callback logs cancelled handlers
            await asyncio.wait(self._link_tasks, timeout=_DROP_WAIT_S)
        tasks = list(self._tasks | self._link_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        self._esmes.clear()

    async def drop_connections(self) -> None:
        """End every session abruptly (TCP reset, no unbind); keep listening for new binds."""
        dropped = set(self._esmes)
        for link in list(self._links):
            link.abort()
        with contextlib.suppress(TimeoutError):  # smpp34 reports each end as Unbound
            await self.wait_for(lambda: not dropped & self._esmes.keys(), _DROP_WAIT_S)
        for session_id in dropped:
            self._esmes.pop(session_id, None)

    async def unbind_all(self) -> None:
        """End every session politely: the SMSC sends unbind (maintenance, say)."""
        for esme in list(self._esmes.values()):
            with contextlib.suppress(smpp34.SmppError):
                await esme.unbind()

    async def _start_backend(self) -> smpp34.Server:
        """smpp34 on a free loopback port (it cannot tell which port 0 would give it)."""
        for attempt in range(_BACKEND_START_ATTEMPTS):
            self._backend_port = _free_port(_BACKEND_HOST)
            server = smpp34.Server(_BACKEND_HOST, self._backend_port, system_id=SMSC_SYSTEM_ID)
            try:
                await server.start()
            except smpp34.SmppError:
                if attempt + 1 == _BACKEND_START_ATTEMPTS:
                    raise
                continue
            return server
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- MO

    async def send_mo(self, source: str, destination: str, text: str) -> SentMo:
        """A mobile-originated deliver_sm (esm_class 0) to a bound session that can receive.

        Raises LookupError when none is bound: an MO test must bind first.
        """
        receivers = self._receivers(self.system_id, "") or [
            e for e in self._esmes.values() if e.can_receive]
        if not receivers:
            raise LookupError("no bound session can receive")
        esme = receivers[0]
        data_coding, body = encode_text(text)
        short_message, tlvs = body, []
        if len(body) > MAX_SHORT_MESSAGE:
            short_message, tlvs = b"", [smpp34.Tlv(TLV_MESSAGE_PAYLOAD, body)]
        resp = await esme.deliver_sm(destination, short_message, source_addr=source,
                                     esm_class=0, data_coding=data_coding, tlvs=tlvs)
        sent = SentMo(esme.session_id, source, destination, text, data_coding,
                      resp.command_status)
        self.mo_sent.append(sent)
        return sent

    # ----------------------------------------------------------------- events

    async def _pump(self, server: smpp34.Server) -> None:
        """The server's event loop: one bad event is logged, never fatal."""
        while True:
            try:
                event = await server.next()
            except smpp34.SmppError:
                _log.exception("SMSC simulator: smpp34 server failed, no more events")
                return
            try:
                self._dispatch(event)
            except Exception:
                _log.exception("SMSC simulator: could not handle %r", event)

    def _dispatch(self, event: smpp34.Esme | smpp34.SubmitSmEvent | smpp34.Unbound) -> None:
        if isinstance(event, smpp34.Esme):
            self._esmes[event.session_id] = event
            if event.can_receive:
                self._release_held(event)
        elif isinstance(event, smpp34.Unbound):
            self._esmes.pop(event.session_id, None)
        elif isinstance(event, smpp34.SubmitSmEvent):
            self._on_submit(event)

    def _on_submit(self, event: smpp34.SubmitSmEvent) -> None:
        """Answer a submit_sm whatever it holds: a failure here answers ESME_RSYSERR."""
        try:
            self._answer_submit(event)
        except Exception:
            _log.exception("SMSC simulator: submit_sm handling failed")
            with contextlib.suppress(Exception):  # already answered: nothing more to say
                event.reject(ESME_RSYSERR)

    def _answer_submit(self, event: smpp34.SubmitSmEvent) -> None:
        esme = self._esmes.get(event.session_id)
        part = _part_from_event(event, esme.system_id if esme else "")
        self.submits.append(part)
        self._submit_count += 1
        rule = self.rule(part.destination_addr)
        part.status = self._refusal(rule)
        if part.status != ESME_ROK:
            event.reject(part.status)
            return
        part.message_id = format(self._next_id, "x")
        self._next_id += 1
        receipt = self._plan_receipt(part, rule, event)
        if receipt is not None and rule.receipt_before_resp:
            self._spawn(self._receipt_then_accept(receipt, event, part.message_id))
            return
        event.accept(part.message_id)
        if receipt is not None:
            delay = self.receipt_delay_s if rule.receipt_delay_s is None else rule.receipt_delay_s
            self._spawn(self._receipt_after(delay, receipt))

    def _refusal(self, rule: SmscRule) -> int:
        """The command_status for this submit_sm: throttling first, as a busy SMSC does."""
        if self.throttle_every > 0 and self._submit_count % self.throttle_every == 0:
            return ESME_RTHROTTLED
        return rule.submit_status

    def _plan_receipt(self, part: SubmittedPart, rule: SmscRule,
                      event: smpp34.SubmitSmEvent) -> _Receipt | None:
        """The receipt this part will get, or None (not asked for, or lost)."""
        receipt = rule.receipt
        if part.udh is not None and 0 < part.udh[2] <= len(rule.part_receipts):
            receipt = rule.part_receipts[part.udh[2] - 1]
        state = RECEIPT_STATES[receipt]
        if state is None or part.message_id is None:
            return None
        if not wants_receipt(part.registered_delivery, state):
            return None
        receipt_id = part.message_id
        if rule.receipt_id_decimal:
            receipt_id = str(int(part.message_id, 16))
        return _Receipt(
            system_id=part.system_id, session_id=part.session_id, message_id=receipt_id,
            state=state, form=rule.receipt_form, source_addr=part.destination_addr,
            source_ton=event.dest_addr_ton, source_npi=event.dest_addr_npi,
            destination_addr=part.source_addr, dest_ton=event.source_addr_ton,
            dest_npi=event.source_addr_npi, submitted=self._stamp(), text=part.text)

    # ----------------------------------------------------------------- receipts

    async def _receipt_then_accept(self, receipt: _Receipt, event: smpp34.SubmitSmEvent,
                                   message_id: str) -> None:
        """The race some SMSCs have: the receipt is on the wire before the submit_sm_resp."""
        try:
            await self._send_receipt(receipt)
        finally:
            with contextlib.suppress(smpp34.SmppError):  # the session may have ended meanwhile
                event.accept(message_id)

    async def _receipt_after(self, delay: float, receipt: _Receipt) -> None:
        await asyncio.sleep(delay)
        await self._send_receipt(receipt)

    async def _send_receipt(self, receipt: _Receipt) -> None:
        """To the submitting session if it can still take it, else to a sibling, else held."""
        for esme in self._receivers(receipt.system_id, receipt.session_id):
            if await self._try_receipt(esme, receipt):
                return
        self._held.append(receipt)

    async def _try_receipt(self, esme: smpp34.Esme, receipt: _Receipt) -> bool:
        """False when the session is gone; a NAKed receipt is dropped (logged), like a lost one.

        Recorded before it goes out, so whoever sees the receipt arrive finds it recorded.
        """
        short_message, tlvs = self._receipt_body(receipt)
        record = (esme.session_id, receipt.message_id, receipt.state)
        self.receipts_sent.append(record)
        try:
            resp = await esme.deliver_sm(
                receipt.destination_addr, short_message, source_addr=receipt.source_addr,
                source_addr_ton=receipt.source_ton, source_addr_npi=receipt.source_npi,
                dest_addr_ton=receipt.dest_ton, dest_addr_npi=receipt.dest_npi,
                esm_class=ESM_CLASS_RECEIPT, tlvs=tlvs)
        except smpp34.SmppError:
            self.receipts_sent.remove(record)
            return False
        self.receipts_answered.append((receipt.message_id, resp.command_status))
        if not resp.is_success:
            _log.warning("SMSC simulator: receipt %s refused with %#x", receipt.message_id,
                         resp.command_status)
        return True

    def _receipt_body(self, receipt: _Receipt) -> tuple[bytes, list[smpp34.Tlv]]:
        """(short_message, TLVs) in the rule's form; the done date is now."""
        short_message = b""
        if receipt.form != "tlv":
            text = format_receipt(receipt.message_id, receipt.state, submitted=receipt.submitted,
                                  done=self._stamp(), error=RECEIPT_ERRORS[receipt.state],
                                  text=receipt.text)
            short_message = text.encode("latin-1", errors="replace")
        tlvs: list[smpp34.Tlv] = []
        if receipt.form != "text":
            tlvs = [smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID,
                               receipt.message_id.encode("ascii") + b"\x00"),
                    smpp34.Tlv(TLV_MESSAGE_STATE, bytes([receipt.state]))]
        return short_message, tlvs

    def _release_held(self, esme: smpp34.Esme) -> None:
        """A session that can receive has bound: what was held for its system_id goes out."""
        due = [r for r in self._held if r.system_id == esme.system_id]
        self._held = [r for r in self._held if r.system_id != esme.system_id]
        for receipt in due:
            self._spawn(self._send_receipt(receipt))

    def _receivers(self, system_id: str, preferred: str) -> list[smpp34.Esme]:
        """Sessions of the system_id that can receive, the preferred one first."""
        found = [e for e in self._esmes.values() if e.can_receive and e.system_id == system_id]
        return sorted(found, key=lambda e: e.session_id != preferred)

    def _stamp(self) -> str:
        return time.strftime("%y%m%d%H%M", time.gmtime(self._clock()))

    # ----------------------------------------------------------------- relay and tasks

    async def _serve_link(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        """One client connection: check its bind, then relay it to smpp34 byte for byte."""
        link = _Link(writer)
        if self._closing:
            link.abort()
            return
        self._links.add(link)
        task = asyncio.current_task()
        if task is not None:
            self._link_tasks.add(task)
        try:
            await self._relay(link, reader)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            self._links.discard(link)
            if task is not None:
                self._link_tasks.discard(task)
            await link.close()

    async def _relay(self, link: _Link, reader: asyncio.StreamReader) -> None:
        first, whole = await _read_first_pdu(reader)
        refusal = bind_refusal(first, self.system_id, self.password) if whole else None
        if refusal is not None:
            link.client.write(refusal)
            await link.client.drain()
            return
        backend_reader, link.backend = await asyncio.open_connection(_BACKEND_HOST,
                                                                     self._backend_port)
        link.backend.write(first)
        await _splice((reader, link.client), (backend_reader, link.backend))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished task; an unexpected failure is logged, never lost silently."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("SMSC simulator task failed", exc_info=task.exception())


def _closed(group: list[SubmittedPart], part: SubmittedPart) -> bool:
    """Whether `part` cannot belong to `group`: the group is complete or has its sequence."""
    sequences = {p.udh[2] for p in group if p.udh}
    total = part.udh[1] if part.udh else 0
    return len(group) >= total or (part.udh is not None and part.udh[2] in sequences)


# --------------------------------------------------------------------------- standalone


async def serve_forever(host: str, port: int, *, receipt_delay_s: float = 0.2,
                        system_id: str = "kaskad", password: str = "secret") -> None:
    """Run the simulator with the sandbox world until cancelled (`kaskad simulate smsc`)."""
    sim = SmscSimulator(system_id=system_id, password=password, world=World(),
                        receipt_delay_s=receipt_delay_s)
    bound = await sim.start(host, port)
    print(f"SMSC simulator (SMPP 3.4) listening on {host}:{bound}; "
          f"bind with system_id={system_id!r} password={password!r}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()

