"""SMS over real SMPP: our aiosmpplib connector against the smpp34-based SMSC simulator over
loopback, inside the cascade, on both databases."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from kaskad.api.app import create_app
from kaskad.bootstrap import Gateway
from kaskad.channels.sms.channel import SmsChannel
from kaskad.channels.sms.connector import Part, SmppConnector
from kaskad.config import ConnectorSettings
from kaskad.domain.cascade import State
from kaskad.domain.channels import ChannelName
from kaskad.domain.smpp import SubmitVerdict, udh
from kaskad.domain.sms import segment
from kaskad.services.admin import Admin
from kaskad.services.send_code import SendCodeInput
from kaskad.simulators.smsc import SmscRule, SmscSimulator
from kaskad.simulators.world import World
from kaskad.storage.mo import recent_mo
from kaskad.storage.schema import attempts, reports, verifications

SAMPLE_REGISTRY = files("kaskad").joinpath("data/numbering_sample.csv").read_text("utf-8")
SMS_DELIVERS = "79001234564"  # no Telegram, SMS delivers (sandbox world)
SMS_FAILS = "79001234565"  # no Telegram, SMS not delivered, voice not answered
SMS_REFUSED = "79001234568"  # no Telegram, SMSC refuses the number, voice answers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def smsc() -> AsyncIterator[SmscSimulator]:
    sim = SmscSimulator(system_id="kaskad", password="secret", world=World(),
                        receipt_delay_s=0.02, slow_delay_s=0.2)
    await sim.start()
    yield sim
    await sim.stop()


def _connector(sim: SmscSimulator, **extra: Any) -> dict[str, Any]:
    return {"name": extra.pop("name", "sim"), "host": "127.0.0.1",
            "port": extra.pop("port", sim.port),
            "system_id": "kaskad", "password": "secret", **extra}


async def _gateway(make_gateway: Any, *connectors: dict[str, Any]) -> tuple[Gateway, str]:
    gw: Gateway = await make_gateway(sms_mode="smpp",
                                     smpp={"connectors": list(connectors), "sender": "Kaskad"})
    sms = gw.engine.channels[ChannelName.SMS]
    assert isinstance(sms, SmsChannel)
    for c in sms.connectors:
        if c.name != "down":  # the failover test's dead SMSC
            assert await c.wait_bound(10)
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    return gw, (await admin.create_account("acme")).api_key


async def _send(gw: Gateway, key: str, number: str, resending: str = "sms") -> str:
    v = await gw.send_code(SendCodeInput(api_key=key, number=number, resending=resending,
                                         code_length=None, code=None, callback_url=None))
    return v.request_id


async def _final(gw: Gateway, request_id: str) -> Any:
    v = await gw.await_state(request_id, lambda v: v.final, 15.0)
    assert v is not None and v.final, v
    return v


async def _attempts(gw: Gateway, request_id: str) -> list[Any]:
    async with gw.db.read() as conn:
        return list(await conn.execute(select(attempts).where(
            attempts.c.request_id == request_id).order_by(attempts.c.id)))


async def test_code_goes_over_smpp_and_its_receipt_delivers_it(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    gw, key = await _gateway(make_gateway, _connector(smsc))
    rid = await _send(gw, key, SMS_DELIVERS)
    v = await _final(gw, rid)
    assert v.state is State.SMS and v.delivered_by == "sms" and v.charged == 350
    [part] = smsc.submits
    assert part.destination_addr == SMS_DELIVERS and part.source_addr == "Kaskad"
    assert part.data_coding == 8 and part.text == f"Ваш код: {v.code}"
    sms = [a for a in await _attempts(gw, rid) if a.channel == "sms"]
    assert sms[0].provider_ref == f"sim:{part.message_id}"


async def test_receipts_with_decimal_ids_match_when_the_connector_says_so(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    """An SMSC that answers submit_sm with hex ids and writes their decimal reading in its
    receipts: with `receipt_ids = "decimal"` the receipt finds its message; with the default
    ("same") it cannot, and is kept as unmatched."""
    smsc.set_rule(SMS_DELIVERS, SmscRule(receipt_id_decimal=True))
    gw, key = await _gateway(make_gateway, _connector(smsc, receipt_ids="decimal"))
    v = await _final(gw, await _send(gw, key, SMS_DELIVERS))
    assert v.state is State.SMS and v.charged == 350


async def test_receipts_with_decimal_ids_stay_unmatched_by_default(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    smsc.set_rule(SMS_DELIVERS, SmscRule(receipt_id_decimal=True))
    gw, key = await _gateway(make_gateway, _connector(smsc, name="plain"))
    await _send(gw, key, SMS_DELIVERS)

    async def unmatched() -> list[Any]:
        async with gw.db.read() as conn:
            return list(await conn.execute(select(reports).where(
                reports.c.disposition == "unmatched")))

    for _ in range(200):
        if await unmatched():
            break
        await asyncio.sleep(0.025)
    [stored] = await unmatched()
    assert stored.provider_ref.startswith("plain:") and stored.provider_ref[6:].isdigit()


async def test_undelivered_receipt_moves_the_cascade_on(make_gateway: Any,
                                                        smsc: SmscSimulator) -> None:
    gw, key = await _gateway(make_gateway, _connector(smsc))
    v = await _final(gw, await _send(gw, key, SMS_FAILS, resending="voice"))
    assert v.state is State.NOT_DELIVERED and v.charged == 0


async def test_refused_number_is_permanent_and_falls_back(make_gateway: Any,
                                                          smsc: SmscSimulator) -> None:
    gw, key = await _gateway(make_gateway, _connector(smsc))
    rid = await _send(gw, key, SMS_REFUSED, resending="sms")
    v = await _final(gw, rid)
    assert v.state is State.NOT_DELIVERED
    sms = [a for a in await _attempts(gw, rid) if a.channel == "sms"]
    assert [a.outcome for a in sms] == ["rejected_permanent"]
    assert "ESME_RINVDSTADR" in sms[0].detail


async def test_receipt_before_the_response_is_not_lost(make_gateway: Any,
                                                       smsc: SmscSimulator) -> None:
    smsc.set_rule(SMS_DELIVERS, SmscRule(receipt_before_resp=True))
    gw, key = await _gateway(make_gateway, _connector(smsc))
    v = await _final(gw, await _send(gw, key, SMS_DELIVERS))
    assert v.state is State.SMS


async def test_throttling_slows_down_instead_of_failing(make_gateway: Any,
                                                        smsc: SmscSimulator) -> None:
    smsc.throttle_every = 2
    gw, key = await _gateway(make_gateway, _connector(smsc))
    rids = [await _send(gw, key, f"7900123{i:03d}4") for i in range(6)]
    states = [(await _final(gw, rid)).state for rid in rids]
    assert states == [State.SMS] * 6
    sms = gw.engine.channels[ChannelName.SMS]
    assert isinstance(sms, SmsChannel) and sms.connectors[0].stats.throttled >= 2


async def test_failover_to_the_next_connector_when_one_is_down(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    down = _connector(smsc, name="down", port=_closed_port())
    gw, key = await _gateway(make_gateway, down, _connector(smsc, name="backup"))
    rid = await _send(gw, key, SMS_DELIVERS)
    assert (await _final(gw, rid)).state is State.SMS
    sms = [a for a in await _attempts(gw, rid) if a.channel == "sms"]
    assert sms[-1].provider_ref.startswith("backup:")
    health = (await gw.channel_status())["sms"]
    assert health["connectors"] == {"down": False, "backup": True}


# --------------------------------------------------------------------------- the connector


@pytest.fixture
async def connector(smsc: SmscSimulator) -> AsyncIterator[tuple[SmppConnector, list[Any]]]:
    receipts: list[Any] = []
    c = SmppConnector(ConnectorSettings(**_connector(smsc, window=2)),
                      on_receipt=lambda name, r: receipts.append(r))
    await c.start()
    assert await c.wait_bound(10)
    yield c, receipts
    await c.stop()


async def test_a_long_message_goes_in_udh_parts(smsc: SmscSimulator,
                                                connector: tuple[SmppConnector, list[Any]]
                                                ) -> None:
    c, receipts = connector
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3
    seg = segment(text)
    assert seg.count == 3
    for i, payload in enumerate(seg.payloads(), start=1):
        result = await c.submit(Part("Kaskad", SMS_DELIVERS, seg.encoding,
                                     udh(7, seg.count, i) + payload, concatenated=True))
        assert result.verdict is SubmitVerdict.ACCEPTED
    [message] = smsc.messages()
    assert [p.udh for p in message] == [(7, 3, 1), (7, 3, 2), (7, 3, 3)]
    assert "".join(p.text for p in message) == text
    await smsc.wait_for(lambda: len(receipts) == 3)


async def test_the_window_caps_outstanding_submits(smsc: SmscSimulator,
                                                   connector: tuple[SmppConnector, list[Any]]
                                                   ) -> None:
    c, _ = connector
    seg = segment("Your code: 1234")
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(c.binds[0].pending))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(c.submit(Part("Kaskad", f"7900555{i:03d}4", seg.encoding,
                                                   seg.payloads()[0])) for i in range(20)))
    watcher.cancel()
    assert all(r.verdict is SubmitVerdict.ACCEPTED for r in results), \
        [r for r in results if r.verdict is not SubmitVerdict.ACCEPTED]
    assert 1 <= peak <= 2


async def test_reconnects_after_the_smsc_drops_the_connection(
        smsc: SmscSimulator, connector: tuple[SmppConnector, list[Any]]) -> None:
    c, _ = connector
    seg = segment("Your code: 1234")
    part = Part("Kaskad", SMS_DELIVERS, seg.encoding, seg.payloads()[0])
    assert (await c.submit(part)).verdict is SubmitVerdict.ACCEPTED
    before = set(smsc.sessions)
    await smsc.drop_connections()
    # aiosmpplib may rebind faster than anyone can see it down: wait for a new session
    await smsc.wait_for(lambda: bool(set(smsc.sessions) - before), timeout=15)
    assert await c.wait_bound(15)
    assert (await c.submit(part)).verdict is SubmitVerdict.ACCEPTED


async def test_mobile_originated_messages_are_stored(make_gateway: Any,
                                                     smsc: SmscSimulator) -> None:
    gw, _ = await _gateway(make_gateway, _connector(smsc))
    await smsc.send_mo("79161234567", "Kaskad", "СТОП")
    await smsc.send_mo("79161234568", "Kaskad", "stop please")
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        async with gw.db.read() as conn:
            stored = await recent_mo(conn)
        if len(stored) == 2:
            break
        assert asyncio.get_running_loop().time() < deadline, stored
        await asyncio.sleep(0.02)
    assert {(m.source, m.text, m.connector) for m in stored} == {
        ("79161234567", "СТОП", "sim"), ("79161234568", "stop please", "sim")}


async def test_routes_and_tariffs_by_operator(make_gateway: Any, smsc: SmscSimulator) -> None:
    gw, key = await _gateway(make_gateway, _connector(smsc, name="mega", routes=["RU:megafon"]),
                             _connector(smsc, name="mts", routes=["RU:mts"]))
    admin = Admin(gw.db, test_balance_kop=0, default_directions=["RU"])
    await admin.import_numbering(SAMPLE_REGISTRY)
    await admin.set_tariff("default", "sms", "RU:mts", 290)
    assert await gw.reload_numbering() == 10
    mts = await _final(gw, await _send(gw, key, "79161234564"))
    mega = await _final(gw, await _send(gw, key, "79261234564"))
    assert (mts.direction, mts.state, mts.charged) == ("RU:mts", State.SMS, 290)
    assert (mega.direction, mega.state, mega.charged) == ("RU:megafon", State.SMS, 350)
    refs = {v.number: [a.provider_ref for a in await _attempts(gw, v.request_id)
                       if a.channel == "sms"] for v in (mts, mega)}
    assert refs["79161234564"][0].startswith("mts:")
    assert refs["79261234564"][0].startswith("mega:")


async def test_push_msg_over_smpp_is_charged_per_part_on_delivery(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    """The issue's acceptance path: push_msg -> submit_sm (UDH parts) -> receipt -> state
    readable with get_msg_report -> the balance charged per part, only once delivered."""
    gw, key = await _gateway(make_gateway, _connector(smsc))
    text = "Ваш заказ собран и ждёт вас в пункте выдачи до пятницы включительно. " * 2
    app = create_app(gw, manage_gateway=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kaskad.test") as client:
        async def call(**params: Any) -> Any:
            r = await client.post("/", data={"format": "json", "key": key, **params})
            return orjson.loads(r.content)["response"]

        sent = await call(method="push_msg", phone=SMS_DELIVERS, text=text,
                          sender_name="Kaskad")
        assert sent["msg"]["err_code"] == "0", sent
        parts = sent["data"]["n_raw_sms"]
        assert parts == segment(text).count == 3
        request = await _final(gw, (await _by_msg_id(gw, sent["data"]["id"])))
        assert request.state is State.SMS
        report = (await call(method="get_msg_report", id=sent["data"]["id"]))["data"]
        assert report["state"] == 1 and report["credits"] == "10.50"
    [message] = [m for m in smsc.messages() if m[0].destination_addr == SMS_DELIVERS]
    assert [p.udh[2] for p in message if p.udh] == [1, 2, 3]
    assert message[0].source_addr == "Kaskad"
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
    account = await admin.account("acme")
    assert (account.balance, account.held) == (5000 - 3 * 350, 0)


LONG_TEXT = "Ваш заказ собран и ждёт вас в пункте выдачи до пятницы включительно. " * 2


async def _push_long(gw: Gateway, key: str, number: str) -> str:
    """push_msg of a three-part text; its request id."""
    app = create_app(gw, manage_gateway=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kaskad.test") as client:
        r = await client.post("/", data={"format": "json", "key": key, "method": "push_msg",
                                         "phone": number, "text": LONG_TEXT})
    sent = orjson.loads(r.content)["response"]
    assert sent["msg"]["err_code"] == "0" and sent["data"]["n_raw_sms"] == 3, sent
    return await _by_msg_id(gw, sent["data"]["id"])


@pytest.mark.parametrize("receipt_before_resp", [False, True], ids=["in_order", "early"])
async def test_a_long_message_is_delivered_once_all_its_parts_are(
        make_gateway: Any, smsc: SmscSimulator, receipt_before_resp: bool) -> None:
    """Each part has its own message id and receipt; all three are matched to the message
    (also when they come before the submit_sm_resp), and it is charged for three parts."""
    smsc.set_rule(SMS_DELIVERS, SmscRule(receipt_before_resp=receipt_before_resp))
    gw, key = await _gateway(make_gateway, _connector(smsc))
    v = await _final(gw, await _push_long(gw, key, SMS_DELIVERS))
    assert v.state is State.SMS and v.charged == 3 * 350
    async with gw.db.read() as conn:
        stored = list(await conn.execute(select(reports).where(
            reports.c.request_id == v.request_id)))
    [message] = [m for m in smsc.messages() if m[0].destination_addr == SMS_DELIVERS]
    assert sorted(r.provider_ref for r in stored) == sorted(
        f"sim:{p.message_id}" for p in message)
    assert "unmatched" not in {r.disposition for r in stored}
    assert {r.disposition for r in stored} <= {"part", "applied"}


@pytest.mark.parametrize("lost", [1, 2, 3])
async def test_a_long_message_with_a_part_not_delivered_is_not_delivered_nor_charged(
        make_gateway: Any, smsc: SmscSimulator, lost: int) -> None:
    """The subscriber has the message only if every part arrived: one undeliverable part
    (the first, or one after a delivered first) makes it not delivered, and nothing is
    charged (before, the message followed its first part's receipt)."""
    receipts = ["delivered"] * 3
    receipts[lost - 1] = "undeliverable"
    smsc.set_rule(SMS_DELIVERS, SmscRule(part_receipts=tuple(receipts)))
    gw, key = await _gateway(make_gateway, _connector(smsc))
    v = await _final(gw, await _push_long(gw, key, SMS_DELIVERS))
    assert v.state is State.NOT_DELIVERED and v.charged == 0
    account = await Admin(gw.db, test_balance_kop=5000,
                          default_directions=["RU"]).account("acme")
    assert (account.balance, account.held) == (5000, 0)


async def _by_msg_id(gw: Gateway, msg_id: int) -> str:
    async with gw.db.read() as conn:
        return str((await conn.execute(select(verifications.c.request_id).where(
            verifications.c.msg_id == msg_id))).scalar_one())


async def test_smpp_over_tls(smsc: SmscSimulator, tls_cert: tuple[Path, Path]) -> None:
    """A connector with `tls = true` binds through a TLS front (stunnel-like, with a cert for
    127.0.0.1 that the connector verifies against `tls_ca_file`) and submits over it."""
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", smsc.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    front = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=server_ctx)
    port = front.sockets[0].getsockname()[1]
    receipts: list[Any] = []
    connector = SmppConnector(ConnectorSettings(
        name="tls", host="127.0.0.1", port=port, system_id="kaskad", password="secret",
        tls=True, tls_ca_file=str(cert)), on_receipt=lambda _n, r: receipts.append(r))
    untrusted = SmppConnector(ConnectorSettings(
        name="untrusted", host="127.0.0.1", port=port, system_id="kaskad", password="secret",
        tls=True), on_receipt=lambda _n, r: None)
    try:
        await connector.start()
        assert await connector.wait_bound(10)
        seg = segment("Код 1234")
        result = await connector.submit(Part("Kaskad", SMS_DELIVERS, seg.encoding,
                                             seg.payloads()[0]))
        assert result.verdict is SubmitVerdict.ACCEPTED
        await untrusted.start()  # the system CAs do not know our certificate: never bound
        assert not await untrusted.wait_bound(1.0)
    finally:
        await connector.stop()
        await untrusted.stop()
        front.close()
    assert any(p.destination_addr == SMS_DELIVERS for p in smsc.submits)


async def test_a_deliver_sm_is_acknowledged_only_once_it_is_stored(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    """Receipt and MO alike: when the SMSC has its deliver_sm_resp, the row is committed,
    even when the database is slow (every write here starts 0.2 s late)."""
    gw, key = await _gateway(make_gateway, _connector(smsc))
    enqueue = gw.batcher.enqueue

    def slow(op: Any, item: Any) -> Any:
        late = asyncio.get_running_loop().create_future()

        def start() -> None:
            def copy(real: asyncio.Future[Any]) -> None:
                error = real.exception()
                if error is not None:
                    late.set_exception(error)
                else:
                    late.set_result(real.result())

            enqueue(op, item).add_done_callback(copy)

        asyncio.get_running_loop().call_later(0.2, start)
        return late

    gw.batcher.enqueue = slow  # type: ignore[method-assign]
    sent = await smsc.send_mo("79161234567", "Kaskad", "СТОП")
    assert sent.status == 0
    async with gw.db.read() as conn:
        assert [m.text for m in await recent_mo(conn)] == ["СТОП"]  # no waiting: stored

    await _final(gw, await _send(gw, key, SMS_DELIVERS))
    deadline = asyncio.get_running_loop().time() + 10
    while not smsc.receipts_answered:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    message_id, status = smsc.receipts_answered[0]
    assert status == 0
    async with gw.db.read() as conn:
        stored = list(await conn.execute(select(reports.c.provider_ref)))
    assert [r.provider_ref for r in stored] == [f"sim:{message_id}"]


async def test_a_deliver_sm_that_cannot_be_stored_is_refused_for_a_resend(
        make_gateway: Any, smsc: SmscSimulator) -> None:
    gw, _ = await _gateway(make_gateway, _connector(smsc))
    enqueue = gw.batcher.enqueue

    def failing(op: Any, item: Any) -> Any:
        if op is gw.store_mo_op:  # the database refuses this one write
            future = asyncio.get_running_loop().create_future()
            future.set_exception(RuntimeError("disk full"))
            return future
        return enqueue(op, item)

    gw.batcher.enqueue = failing  # type: ignore[method-assign]
    sent = await smsc.send_mo("79161234567", "Kaskad", "СТОП")
    assert sent.status == 0x08  # ESME_RSYSERR: the SMSC keeps it and sends it again
    gw.batcher.enqueue = enqueue  # type: ignore[method-assign]
    assert (await smsc.send_mo("79161234567", "Kaskad", "СТОП")).status == 0

