"""The SMSC simulator, spoken to over loopback by smpp34's own client (and by raw PDUs).

kaskad's SMPP client is tested against this simulator, so its wire behaviour (binds, answers,
receipts in every form, the misbehaviours on demand) is pinned here on its own, with an ESME
that shares no code with kaskad's: a bug in the simulator would otherwise pass for a bug, or a
feature, of the client.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import pytest
import smpp34
from smpp34._smpp34 import ESME_RINVDSTADR, ESME_RTHROTTLED, TLV_MESSAGE_PAYLOAD

from kaskad.domain.dlr import (
    ESM_CLASS_RECEIPT,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    MessageState,
    Receipt,
    matching_id,
    receipt_from_pdu,
)
from kaskad.simulators.smsc import SmscRule, SmscSimulator, rule_from_world, serve_forever
from kaskad.simulators.world import World

WAIT_S = 5.0
SYSTEM_ID, PASSWORD = "kaskad", "secret"
SENDER = "kaskad"
PHONE = "79001234560"  # the sandbox world delivers to ...0
GSM = 0x00
UCS2 = 0x08
UDHI = 0x40


class Connect(Protocol):
    async def __call__(self, sim: SmscSimulator | None = None, *, bind_type: str = "TRX",
                       system_id: str = SYSTEM_ID) -> smpp34.Smsc: ...


MakeSmsc = Callable[..., Awaitable[SmscSimulator]]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def make_smsc() -> AsyncIterator[MakeSmsc]:
    """Started simulators, stopped at the end (stop() may also be called by the test)."""
    started: list[SmscSimulator] = []

    async def _make(**kwargs: Any) -> SmscSimulator:
        kwargs.setdefault("receipt_delay_s", 0.01)
        sim = SmscSimulator(**kwargs)
        await sim.start()
        started.append(sim)
        return sim

    yield _make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def smsc(make_smsc: MakeSmsc) -> SmscSimulator:
    return await make_smsc()


@pytest.fixture
async def connect(smsc: SmscSimulator) -> AsyncIterator[Connect]:
    """Bound smpp34 clients; returns once the simulator has seen the bind too."""
    clients: list[smpp34.Client] = []

    async def _connect(sim: SmscSimulator | None = None, *, bind_type: str = "TRX",
                       system_id: str = SYSTEM_ID) -> smpp34.Smsc:
        target = sim or smsc
        assert target.port is not None
        known = set(target.sessions)
        client = smpp34.Client("127.0.0.1", target.port, system_id, PASSWORD,
                               bind_type=bind_type)
        clients.append(client)
        session = await asyncio.wait_for(client.connect(), WAIT_S)
        await target.wait_for(lambda: bool(set(target.sessions) - known))
        return session

    yield _connect
    for client in clients:
        await asyncio.wait_for(client.stop(), WAIT_S)


# --------------------------------------------------------------------------- helpers


async def next_event(session: smpp34.Smsc) -> smpp34.DeliverSmEvent | smpp34.Disconnected:
    return await asyncio.wait_for(session.next(), WAIT_S)


async def next_deliver(session: smpp34.Smsc) -> smpp34.DeliverSmEvent:
    event = await next_event(session)
    assert isinstance(event, smpp34.DeliverSmEvent), event
    return event


def tlv_dict(event: smpp34.DeliverSmEvent) -> dict[int, bytes]:
    return {tlv.tag: tlv.value for tlv in event.tlvs}


def parsed(event: smpp34.DeliverSmEvent) -> Receipt:
    receipt = receipt_from_pdu(tlv_dict(event), event.short_message)
    assert receipt is not None, event.short_message
    return receipt


async def submit(session: smpp34.Smsc, text: str = "Your code: 1234", *,
                 destination: str = PHONE, receipt: bool = True,
                 **kwargs: Any) -> smpp34.SubmitSmResp:
    kwargs.setdefault("registered_delivery", 1 if receipt else 0)
    return await session.submit_sm(destination, text.encode("gsm03.38"), source_addr=SENDER,
                                   **kwargs)


def concat_parts(texts: list[str], *, reference: int, ucs2: bool) -> list[bytes]:
    """Each part's short_message: its UDH (8-bit or 16-bit reference) and its encoded text."""
    total = len(texts)
    out = []
    for sequence, text in enumerate(texts, 1):
        if ucs2:
            udh = bytes([6, 0x08, 4]) + reference.to_bytes(2, "big") + bytes([total, sequence])
            out.append(udh + text.encode("utf-16-be"))
        else:
            udh = bytes([5, 0x00, 3, reference, total, sequence])
            out.append(udh + text.encode("gsm03.38"))
    return out


class RawEsme:
    """An ESME written PDU by PDU, to see the exact order of what the SMSC sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawEsme:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, command_id: int, body: bytes, sequence: int, status: int = 0) -> None:
        self.writer.write(struct.pack("!IIII", 16 + len(body), command_id, status, sequence)
                          + body)

    def bind(self, system_id: str, password: str, sequence: int = 1) -> None:
        body = system_id.encode() + b"\0" + password.encode() + b"\0" + b"\0" + b"\x34\0\0\0"
        self.send(0x00000009, body, sequence)

    async def read(self) -> tuple[int, int, int, bytes]:
        """(command_id, status, sequence, whole PDU) of the next PDU."""
        head = await asyncio.wait_for(self.reader.readexactly(16), WAIT_S)
        length, command_id, status, sequence = struct.unpack("!IIII", head)
        body = await asyncio.wait_for(self.reader.readexactly(length - 16), WAIT_S)
        return command_id, status, sequence, head + body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# --------------------------------------------------------------------------- bind and submit


async def test_bind_and_submit_answers_a_message_id(smsc: SmscSimulator,
                                                    connect: Connect) -> None:
    session = await connect()
    resp = await submit(session, "Hello {world}", receipt=False)

    assert resp.is_success and resp.message_id
    int(resp.message_id, 16)  # hex
    assert len(smsc.sessions) == 1
    [part] = smsc.submits
    assert (part.session_id, part.system_id) == (smsc.sessions[0], SYSTEM_ID)
    assert (part.source_addr, part.destination_addr) == (SENDER, PHONE)
    assert (part.message_id, part.status, part.udh) == (resp.message_id, 0, None)
    assert (part.data_coding, part.registered_delivery, part.text) == (GSM, 0, "Hello {world}")


async def test_message_ids_are_unique(connect: Connect) -> None:
    session = await connect()
    ids = [(await submit(session, receipt=False)).message_id for _ in range(5)]
    assert len(set(ids)) == 5


@pytest.mark.parametrize(("system_id", "password", "status"), [
    (SYSTEM_ID, "wrong", 0x0E),  # ESME_RINVPASWD
    ("intruder", PASSWORD, 0x0F),  # ESME_RINVSYSID
    (SYSTEM_ID, PASSWORD, 0),
])
async def test_bind_credentials_are_checked(smsc: SmscSimulator, system_id: str,
                                            password: str, status: int) -> None:
    assert smsc.port is not None
    esme = await RawEsme.open(smsc.port)
    try:
        esme.bind(system_id, password)
        command_id, answered, sequence, _ = await esme.read()
        assert (command_id, answered, sequence) == (0x80000009, status, 1)
        if status:  # refused: the SMSC hangs up
            assert await asyncio.wait_for(esme.reader.read(), WAIT_S) == b""
    finally:
        await esme.close()


# --------------------------------------------------------------------------- receipts


async def test_receipt_carries_tlvs_and_text(make_smsc: MakeSmsc, connect: Connect) -> None:
    sim = await make_smsc(clock=lambda: 1_700_000_000.0)  # 2023-11-14 22:13 UTC
    session = await connect(sim)
    resp = await submit(session, "Your code: 1234")
    event = await next_deliver(session)

    assert event.esm_class == ESM_CLASS_RECEIPT
    assert (event.source_addr, event.destination_addr) == (PHONE, SENDER)
    tlvs = tlv_dict(event)
    assert tlvs[TLV_RECEIPTED_MESSAGE_ID] == f"{resp.message_id}".encode() + b"\0"
    assert tlvs[TLV_MESSAGE_STATE] == bytes([MessageState.DELIVERED])
    from_tlvs = receipt_from_pdu(tlvs, b"")
    from_text = receipt_from_pdu({}, event.short_message)
    assert from_tlvs == Receipt(str(resp.message_id), MessageState.DELIVERED)
    assert from_text == Receipt(str(resp.message_id), MessageState.DELIVERED, "000",
                                "2311142213", "2311142213")
    assert b"text:Your code: 1234" in event.short_message
    assert sim.receipts_sent == [(sim.sessions[0], resp.message_id, MessageState.DELIVERED)]


@pytest.mark.parametrize(("receipt", "state"), [
    ("undeliverable", MessageState.UNDELIVERABLE),
    ("expired", MessageState.EXPIRED),
    ("rejected", MessageState.REJECTED),
])
async def test_failed_receipts(smsc: SmscSimulator, connect: Connect, receipt: str,
                               state: MessageState) -> None:
    smsc.set_rule(PHONE, SmscRule(receipt=receipt))
    session = await connect()
    resp = await submit(session)
    event = await next_deliver(session)
    found = parsed(event)

    assert resp.is_success
    assert (found.message_id, found.state) == (resp.message_id, state)
    assert found.error not in ("", "000")
    assert f"stat:{state.stat} ".encode() in event.short_message
    assert tlv_dict(event)[TLV_MESSAGE_STATE] == bytes([state])


@pytest.mark.parametrize("form", ["tlv", "text"])
async def test_receipt_in_one_form_only(smsc: SmscSimulator, connect: Connect,
                                        form: str) -> None:
    smsc.set_rule(PHONE, SmscRule(receipt_form=form))
    session = await connect()
    resp = await submit(session)
    event = await next_deliver(session)

    if form == "tlv":
        assert event.short_message == b""
        assert set(tlv_dict(event)) == {TLV_RECEIPTED_MESSAGE_ID, TLV_MESSAGE_STATE}
    else:
        assert event.tlvs == []
        assert event.short_message.startswith(f"id:{resp.message_id} ".encode())
    assert parsed(event).message_id == resp.message_id


async def test_lost_receipt_and_unrequested_receipt_never_arrive(smsc: SmscSimulator,
                                                                 connect: Connect) -> None:
    lost_number = "79001234561"
    smsc.set_rule(lost_number, SmscRule(receipt="none"))
    session = await connect()
    lost = await submit(session, destination=lost_number)
    unrequested = await submit(session, receipt=False)
    wanted = await submit(session)
    # Same delay for all three: had the first two a receipt, it would come first.
    first = parsed(await next_deliver(session))

    assert lost.is_success and unrequested.is_success
    assert first.message_id == wanted.message_id
    assert [m for _, m, _ in smsc.receipts_sent] == [wanted.message_id]


async def test_failure_only_receipts(smsc: SmscSimulator, connect: Connect) -> None:
    """registered_delivery 2: a receipt on failure only."""
    failing = "79001234565"
    smsc.set_rule(failing, SmscRule(receipt="undeliverable"))
    session = await connect()
    await submit(session, registered_delivery=2)
    failed = await submit(session, destination=failing, registered_delivery=2)
    found = parsed(await next_deliver(session))

    assert (found.message_id, found.state) == (failed.message_id, MessageState.UNDELIVERABLE)
    assert len(smsc.receipts_sent) == 1


async def test_decimal_receipt_ids(smsc: SmscSimulator, connect: Connect) -> None:
    smsc.set_rule(PHONE, SmscRule(receipt_id_decimal=True))
    session = await connect()
    resp = await submit(session)
    found = parsed(await next_deliver(session))

    assert resp.message_id is not None
    assert found.message_id == str(int(resp.message_id, 16))
    assert (matching_id(found.message_id, "decimal", in_receipt=True)
            == matching_id(resp.message_id, "decimal", in_receipt=False))


async def test_receipt_before_resp_is_on_the_wire_first(smsc: SmscSimulator) -> None:
    smsc.set_rule(PHONE, SmscRule(receipt_before_resp=True))
    assert smsc.port is not None
    esme = await RawEsme.open(smsc.port)
    try:
        esme.bind(SYSTEM_ID, PASSWORD)
        assert (await esme.read())[:2] == (0x80000009, 0)
        esme.writer.write(smpp34.SubmitSm(SENDER, PHONE, b"code 1234", registered_delivery=1,
                                          sequence_number=2).encode())
        command_id, _, sequence, pdu = await esme.read()
        assert command_id == 0x00000005  # deliver_sm, before any submit_sm_resp
        receipt = smpp34.decode(pdu)
        assert isinstance(receipt, smpp34.DeliverSm)
        found = receipt_from_pdu({t.tag: t.value for t in receipt.tlvs}, receipt.short_message)
        esme.send(0x80000005, b"\0", sequence)  # deliver_sm_resp
        command_id, status, sequence, pdu = await esme.read()
    finally:
        await esme.close()

    assert (command_id, status, sequence) == (0x80000004, 0, 2)
    assert found is not None and pdu[16:].rstrip(b"\0").decode() == found.message_id


async def test_receipt_goes_to_the_submitting_session(smsc: SmscSimulator,
                                                      connect: Connect) -> None:
    await connect()
    second = await connect()
    resp = await submit(second)
    await next_deliver(second)

    [part] = smsc.submits
    assert smsc.receipts_sent == [(part.session_id, resp.message_id, MessageState.DELIVERED)]
    assert part.session_id == smsc.sessions[1]


async def test_receipt_is_held_until_a_receiver_binds(smsc: SmscSimulator,
                                                      connect: Connect) -> None:
    transmitter = await connect(bind_type="TX")
    resp = await submit(transmitter)
    await smsc.wait_for(lambda: smsc.held_receipts == 1)
    receiver = await connect(bind_type="RX")
    found = parsed(await next_deliver(receiver))

    assert found.message_id == resp.message_id
    assert smsc.held_receipts == 0


# --------------------------------------------------------------------------- refusals


async def test_submit_refused_with_the_rule_status(smsc: SmscSimulator,
                                                   connect: Connect) -> None:
    refused_number = "79001234568"
    smsc.set_rule(refused_number, SmscRule(submit_status=ESME_RINVDSTADR))
    session = await connect()
    refused = await submit(session, destination=refused_number)
    accepted = await submit(session)
    first = parsed(await next_deliver(session))

    assert not refused.is_success and refused.command_status == ESME_RINVDSTADR
    assert first.message_id == accepted.message_id  # no receipt for the refused one
    assert (smsc.submits[0].message_id, smsc.submits[0].status) == (None, ESME_RINVDSTADR)
    assert [len(m) for m in smsc.messages()] == [1]  # only accepted parts


async def test_throttling_every_nth_submit(make_smsc: MakeSmsc, connect: Connect) -> None:
    sim = await make_smsc(throttle_every=3)
    session = await connect(sim)
    statuses = [(await submit(session, receipt=False)).command_status for _ in range(6)]
    sim.throttle_every = 0
    later = [(await submit(session, receipt=False)).command_status for _ in range(3)]

    assert statuses == [0, 0, ESME_RTHROTTLED, 0, 0, ESME_RTHROTTLED]
    assert later == [0, 0, 0]
    assert [p.message_id is None for p in sim.submits[:3]] == [False, False, True]


# --------------------------------------------------------------------------- concatenation


@pytest.mark.parametrize("ucs2", [False, True], ids=["gsm", "ucs2"])
async def test_concatenated_message_is_grouped_and_reassembled(smsc: SmscSimulator,
                                                               connect: Connect,
                                                               ucs2: bool) -> None:
    if ucs2:
        texts = ["Ваш код 1234. " * 4, "Никому его не сообщайте 😀 ", "До встречи!"]
    else:
        texts = ["Your code is 1234 {valid} " * 5, "Do not share it with anyone: €5 ", "Bye"]
    reference = 0x1234 if ucs2 else 0x2A
    payloads = concat_parts(texts, reference=reference, ucs2=ucs2)
    session = await connect()
    # Out of order, with an unrelated single part in between.
    resp2 = await session.submit_sm(PHONE, payloads[1], source_addr=SENDER, esm_class=UDHI,
                                    data_coding=UCS2 if ucs2 else GSM, registered_delivery=1)
    single = await submit(session, "Alone", receipt=False)
    others = [await session.submit_sm(PHONE, payloads[i], source_addr=SENDER, esm_class=UDHI,
                                      data_coding=UCS2 if ucs2 else GSM, registered_delivery=1)
              for i in (0, 2)]
    receipts = {parsed(await next_deliver(session)).message_id for _ in range(3)}

    whole, alone = smsc.messages()
    assert [p.udh for p in whole] == [(reference, 3, 1), (reference, 3, 2), (reference, 3, 3)]
    assert "".join(p.text for p in whole) == "".join(texts)
    assert [p.message_id for p in alone] == [single.message_id]
    ids = {resp2.message_id, *(r.message_id for r in others)}
    assert len(ids) == 3 and receipts == ids  # each part has its own id and its own receipt


async def test_a_resubmitted_part_starts_a_new_message(smsc: SmscSimulator,
                                                       connect: Connect) -> None:
    payloads = concat_parts(["first half ", "second half"], reference=7, ucs2=False)
    session = await connect()
    for payload in (payloads[0], payloads[0], payloads[1]):
        await session.submit_sm(PHONE, payload, source_addr=SENDER, esm_class=UDHI)

    assert [[p.udh for p in m] for m in smsc.messages()] == [[(7, 2, 1)], [(7, 2, 1), (7, 2, 2)]]


async def test_odd_input_is_recorded_and_answered(smsc: SmscSimulator,
                                                  connect: Connect) -> None:
    session = await connect()
    odd: list[dict[str, Any]] = [
        dict(short_message=b"\xff\x00\x9c garbage", data_coding=0x77),
        dict(short_message=b"\xffshort", esm_class=UDHI),  # a UDH longer than the body
        dict(short_message=b"\x04", data_coding=UCS2),  # half a UTF-16 unit
        dict(short_message=b"\x80\x9b\xff", data_coding=GSM),  # no such septets
        dict(short_message=b"", tlvs=[smpp34.Tlv(TLV_MESSAGE_PAYLOAD, b"in the payload")]),
    ]
    answers = [await session.submit_sm(PHONE, source_addr=SENDER, **kw) for kw in odd]

    assert all(a.is_success for a in answers)
    texts = [p.text for p in smsc.submits]
    assert texts[0] == b"\xff\x00\x9c garbage".decode("latin-1")
    assert (smsc.submits[1].udh, texts[1]) == (None, b"\xffshort".decode("gsm03.38", "replace"))
    assert texts[2] == "\ufffd"
    assert "\ufffd" in texts[3]
    assert texts[4] == "in the payload"
    assert (await submit(session, receipt=False)).is_success  # still serving


# --------------------------------------------------------------------------- connections


async def test_drop_connections_forces_a_reconnect(smsc: SmscSimulator,
                                                   connect: Connect) -> None:
    session = await connect()
    await smsc.drop_connections()

    assert isinstance(await next_event(session), smpp34.Disconnected)
    assert smsc.sessions == []
    again = await connect()
    resp = await submit(again)
    assert resp.is_success
    assert parsed(await next_deliver(again)).message_id == resp.message_id


async def test_unbind_all_ends_sessions_politely(smsc: SmscSimulator, connect: Connect) -> None:
    session = await connect()
    await smsc.unbind_all()

    assert isinstance(await next_event(session), smpp34.Disconnected)
    await smsc.wait_for(lambda: smsc.sessions == [])


async def test_stop_disconnects_bound_clients(smsc: SmscSimulator, connect: Connect) -> None:
    session = await connect()
    await smsc.stop()

    assert isinstance(await next_event(session), smpp34.Disconnected)
    assert smsc.sessions == []


# --------------------------------------------------------------------------- MO


@pytest.mark.parametrize(("text", "data_coding"), [
    ("STOP {all}", GSM),
    ("Привет, код 1234", UCS2),
])
async def test_send_mo_reaches_the_client(smsc: SmscSimulator, connect: Connect, text: str,
                                          data_coding: int) -> None:
    session = await connect()
    await smsc.send_mo("79001234567", "kaskad", text)
    event = await next_deliver(session)

    codec = "gsm03.38" if data_coding == GSM else "utf-16-be"
    assert (event.esm_class, event.data_coding) == (0, data_coding)
    assert (event.source_addr, event.destination_addr) == ("79001234567", "kaskad")
    assert event.short_message.decode(codec) == text
    [sent] = smsc.mo_sent
    assert (sent.session_id, sent.text, sent.status) == (smsc.sessions[0], text, 0)


async def test_long_mo_travels_in_message_payload(smsc: SmscSimulator,
                                                  connect: Connect) -> None:
    session = await connect()
    text = "long reply " * 30
    await smsc.send_mo("79001234567", "kaskad", text)
    event = await next_deliver(session)

    assert event.short_message == b""
    assert tlv_dict(event)[TLV_MESSAGE_PAYLOAD].decode("gsm03.38") == text


async def test_send_mo_needs_a_receiver(smsc: SmscSimulator, connect: Connect) -> None:
    with pytest.raises(LookupError):
        await smsc.send_mo("79001234567", "kaskad", "hi")
    await connect(bind_type="TX")
    with pytest.raises(LookupError):
        await smsc.send_mo("79001234567", "kaskad", "hi")


# --------------------------------------------------------------------------- the world


def test_rules_from_the_world() -> None:
    world = World()
    sim = SmscSimulator(world=world, slow_delay_s=0.3)
    sim.set_rule("79001234565", SmscRule(receipt="expired"))

    assert rule_from_world(world, "79001234560") == SmscRule()
    assert rule_from_world(world, "79001234565") == SmscRule(receipt="undeliverable")
    assert rule_from_world(world, "79001234568") == SmscRule(submit_status=ESME_RINVDSTADR)
    assert sim.rule("79001234569") == SmscRule(receipt_delay_s=0.3)
    assert sim.rule("79001234565").receipt == "expired"  # the override wins
    assert sim.rule("79001234555").receipt == "undeliverable"
    assert sim.rule("kaskad") == SmscRule() == SmscSimulator().rule("79001234565")
    with pytest.raises(ValueError):
        SmscRule(receipt="maybe")


async def test_world_rules_over_the_wire(make_smsc: MakeSmsc, connect: Connect) -> None:
    sim = await make_smsc(world=World(), slow_delay_s=0.3)
    session = await connect(sim)

    refused = await submit(session, destination="79001234568")
    failed = await submit(session, destination="79001234565")
    found = parsed(await next_deliver(session))
    started = time.monotonic()
    slow = await submit(session, destination="79001234569")
    slow_receipt = parsed(await next_deliver(session))

    assert refused.command_status == ESME_RINVDSTADR
    assert (found.message_id, found.state) == (failed.message_id, MessageState.UNDELIVERABLE)
    assert (slow_receipt.message_id, slow_receipt.state) == (slow.message_id,
                                                              MessageState.DELIVERED)
    assert time.monotonic() - started >= 0.3


async def test_wait_for_times_out(smsc: SmscSimulator) -> None:
    with pytest.raises(TimeoutError):
        await smsc.wait_for(lambda: False, timeout=0.05)


async def test_serve_forever_prints_where_it_listens(capsys: pytest.CaptureFixture[str]) -> None:
    runner = asyncio.create_task(serve_forever("127.0.0.1", 0, receipt_delay_s=0.01))
    output = ""
    deadline = time.monotonic() + WAIT_S
    while not (found := re.search(r"listening on 127\.0\.0\.1:(\d+)", output)):
        assert time.monotonic() < deadline and not runner.done(), output
        await asyncio.sleep(0.005)
        output += capsys.readouterr().out
    client = smpp34.Client("127.0.0.1", int(found.group(1)), SYSTEM_ID, PASSWORD,
                           bind_type="TRX")
    try:
        session = await asyncio.wait_for(client.connect(), WAIT_S)
        refused = await submit(session, destination="79001234568")  # the sandbox world
    finally:
        await asyncio.wait_for(client.stop(), WAIT_S)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    assert refused.command_status == ESME_RINVDSTADR
