"""Our SMPP connector against a second, independent SMSC: node-smpp's server (npm "smpp"),
run from tests/peers/. Bind, submit (GSM 03.38, UCS-2, a three-part UDH message), receipts,
a refused bind, and a clean unbind."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kaskad.channels.sms.connector import Part, SmppConnector
from kaskad.config import ConnectorSettings
from kaskad.domain.dlr import MessageState, Receipt
from kaskad.domain.smpp import SubmitVerdict, udh
from kaskad.domain.sms import Encoding, segment

PEERS = Path(__file__).resolve().parent.parent / "peers"


class NodeSmsc:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.submits: list[dict[str, Any]] = []

    async def read_submits(self, count: int) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        while len(self.submits) < count:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 10)
            assert line, "the node SMSC exited"
            self.submits.append(json.loads(line))
        return self.submits


@pytest.fixture
async def node_smsc() -> AsyncIterator[NodeSmsc]:
    node = shutil.which("node")
    if node is None or not (PEERS / "node_modules" / "smpp").is_dir():
        pytest.fail("node and tests/peers/node_modules are required: run scripts/install --dev",
                    pytrace=False)
    proc = await asyncio.create_subprocess_exec(
        node, str(PEERS / "smpp_server.js"), "kaskad", "secret",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
    yield NodeSmsc(proc, int(first["port"]))
    proc.terminate()
    await proc.wait()


async def _connector(port: int, password: str, receipts: list[Receipt],
                     **settings: Any) -> SmppConnector:
    c = SmppConnector(ConnectorSettings(**{"name": "node", "host": "127.0.0.1", "port": port,
                                           "system_id": "kaskad", "password": password,
                                           "window": 10, **settings}),
                      on_receipt=lambda _name, r: receipts.append(r))
    await c.start()
    return c


async def test_bind_submit_and_receipts(node_smsc: NodeSmsc) -> None:
    receipts: list[Receipt] = []
    c = await _connector(node_smsc.port, "secret", receipts)
    try:
        assert await c.wait_bound(10)
        ids = []
        for text in ("Your code: 1234", "Ваш код: 5678"):
            seg = segment(text)
            result = await c.submit(Part("Kaskad", "79001234564", seg.encoding,
                                         seg.payloads()[0]))
            assert result.verdict is SubmitVerdict.ACCEPTED and result.message_id
            ids.append(result.message_id)
        long_text = "Длинное сообщение, которое не помещается в одну часть. " * 3
        seg = segment(long_text)
        assert seg.encoding is Encoding.UCS2 and seg.count == 3
        for i, payload in enumerate(seg.payloads(), start=1):
            result = await c.submit(Part("Kaskad", "79001234564", seg.encoding,
                                         udh(9, 3, i) + payload, concatenated=True))
            assert result.verdict is SubmitVerdict.ACCEPTED
            ids.append(str(result.message_id))
        submits = await node_smsc.read_submits(5)
        assert [s["data_coding"] for s in submits] == [0, 8, 8, 8, 8]
        assert submits[0]["text"] == "Your code: 1234" and submits[1]["text"] == "Ваш код: 5678"
        assert [s["udh"] for s in submits[2:]] == [[[0, 3, 9, 3, n]] for n in (1, 2, 3)]
        assert "".join(s["text"] for s in submits[2:]) == long_text
        deadline = asyncio.get_running_loop().time() + 10
        while len(receipts) < 5:
            assert asyncio.get_running_loop().time() < deadline, receipts
            await asyncio.sleep(0.01)
        assert sorted(r.message_id for r in receipts) == sorted(ids)
        assert {r.state for r in receipts} == {MessageState.DELIVERED}
    finally:
        await c.stop()


async def test_a_refused_bind_never_counts_as_up(node_smsc: NodeSmsc) -> None:
    c = await _connector(node_smsc.port, "wrong", [])
    try:
        assert not await c.wait_bound(1.0)
        seg = segment("Your code: 1234")
        result = await c.submit(Part("Kaskad", "79001234564", seg.encoding, seg.payloads()[0]))
        assert result.verdict is SubmitVerdict.TEMPORARY and "not bound" in result.detail
    finally:
        await c.stop()


async def test_a_vendor_specific_status_fails_the_part_and_keeps_the_session(
        node_smsc: NodeSmsc) -> None:
    """aiosmpplib knew only the listed command_status codes and dropped the session on any
    other; a vendor's code (0x400-0x4FF) is a temporary failure of that one part."""
    c = await _connector(node_smsc.port, "secret", [])
    try:
        assert await c.wait_bound(10)
        session = c.binds[0].esme._writer  # aiosmpplib's stream of the bound session
        seg = segment("Your code: 1234")
        odd = await c.submit(Part("Kaskad", "79005550401", seg.encoding, seg.payloads()[0]))
        assert odd.verdict is SubmitVerdict.TEMPORARY and odd.detail == "0x00000401", odd
        ok = await c.submit(Part("Kaskad", "79001234564", seg.encoding, seg.payloads()[0]))
        assert ok.verdict is SubmitVerdict.ACCEPTED
        assert c.binds[0].esme._writer is session  # no reconnect in between
    finally:
        await c.stop()


async def test_an_unanswered_submit_times_out_and_frees_its_place_in_the_window(
        node_smsc: NodeSmsc) -> None:
    """Window 1: the submit the SMSC never answers holds the only place until its timeout,
    the one queued behind it is not sent before then, and both get an answer."""
    c = await _connector(node_smsc.port, "secret", [], window=1, submit_timeout_s=0.5)
    try:
        assert await c.wait_bound(10)
        seg = segment("Your code: 1234")
        lost = asyncio.ensure_future(
            c.submit(Part("Kaskad", "79005550999", seg.encoding, seg.payloads()[0])))
        await asyncio.sleep(0.1)
        assert len(c.binds[0].pending) == 1
        started = asyncio.get_running_loop().time()
        ok = await c.submit(Part("Kaskad", "79001234564", seg.encoding, seg.payloads()[0]))
        assert ok.verdict is SubmitVerdict.ACCEPTED
        assert asyncio.get_running_loop().time() - started >= 0.3  # it waited for the place
        timed_out = await lost
        assert timed_out.verdict is SubmitVerdict.TEMPORARY
        assert "TimeoutError" in timed_out.detail
        assert not c.binds[0].pending and not c.binds[0].queue
    finally:
        await c.stop()


async def test_a_generic_nack_answers_the_submit_it_refuses(node_smsc: NodeSmsc) -> None:
    """An SMSC may answer a submit_sm with generic_nack; that is the part's answer (by
    sequence number), not a wait for the timeout."""
    c = await _connector(node_smsc.port, "secret", [], submit_timeout_s=5.0)
    try:
        assert await c.wait_bound(10)
        seg = segment("Your code: 1234")
        started = asyncio.get_running_loop().time()
        nacked = await c.submit(Part("Kaskad", "79005550998", seg.encoding, seg.payloads()[0]))
        assert asyncio.get_running_loop().time() - started < 4
        assert nacked.verdict is not SubmitVerdict.ACCEPTED
        assert nacked.detail == "ESME_RINVCMDID", nacked
        ok = await c.submit(Part("Kaskad", "79001234564", seg.encoding, seg.payloads()[0]))
        assert ok.verdict is SubmitVerdict.ACCEPTED
    finally:
        await c.stop()
