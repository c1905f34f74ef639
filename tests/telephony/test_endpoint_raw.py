"""Our incoming endpoint and client transactions against hand-written SIP over UDP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kaskad.channels.telephony.calls import CallEnd, SipCaller
from kaskad.channels.telephony.incoming import IncomingCalls
from kaskad.channels.telephony.stack import SipStack
from kaskad.channels.telephony.transactions import ServerTransaction
from tests.telephony.conftest import trunk_to
from tests.telephony.rawsip import RawPeer, ack, invite, raw_peer, to_tag

DID = "79990001122"


@pytest.fixture
async def peer() -> AsyncIterator[RawPeer]:
    raw = await raw_peer()
    yield raw
    raw.close()


@pytest.fixture
def hooked(stack: SipStack) -> list[tuple[str, str, str]]:
    calls: list[tuple[str, str, str]] = []

    async def on_incoming(caller: str, callee: str, call_id: str) -> bool:
        calls.append((caller, callee, call_id))
        return True

    stack.handler = IncomingCalls([DID], on_incoming)
    return calls


async def test_retransmitted_invite_gets_the_same_486_and_one_hook_call(
        stack: SipStack, peer: RawPeer, hooked: list[tuple[str, str, str]]) -> None:
    peer.send(invite(peer.port, DID), stack.address)
    assert await peer.next_status() == 100
    first = await peer.next()
    assert first.startswith("SIP/2.0 486")
    peer.send(invite(peer.port, DID), stack.address)  # our 486 "was lost": the caller resends
    again = await peer.next()
    assert again == first  # byte for byte: same To tag, same everything
    peer.send(ack(peer.port, DID, to_tag(first)), stack.address)
    assert hooked == [("79161234567", DID, "raw-1")]


async def test_486_is_retransmitted_until_acked(stack: SipStack, peer: RawPeer,
                                                hooked: list[tuple[str, str, str]]) -> None:
    peer.send(invite(peer.port, DID, call_id="raw-2"), stack.address)
    assert await peer.next_status() == 100
    first = await peer.next()
    assert await peer.next() == first  # timer G: no ACK yet, so the 486 comes again
    peer.send(ack(peer.port, DID, to_tag(first), call_id="raw-2"), stack.address)
    txn = next(t for t in stack._servers.values()
               if isinstance(t, ServerTransaction) and t.request.call_id == "raw-2")
    async with asyncio.timeout(2):
        await txn.acked.wait()
    assert len(hooked) == 1


async def test_p_asserted_identity_wins_and_8_prefix_is_normalised(
        stack: SipStack, peer: RawPeer, hooked: list[tuple[str, str, str]]) -> None:
    peer.send(invite(peer.port, DID, call_id="raw-3", pai="89031112233"), stack.address)
    assert await peer.next_status() == 100
    assert await peer.next_status() == 486
    assert hooked == [("79031112233", DID, "raw-3")]


async def test_unknown_number_gets_404(stack: SipStack, peer: RawPeer,
                                       hooked: list[tuple[str, str, str]]) -> None:
    peer.send(invite(peer.port, "79990000000", call_id="raw-4"), stack.address)
    assert await peer.next_status() == 100
    assert await peer.next_status() == 404
    assert hooked == []


async def test_options_keepalive_gets_200(stack: SipStack, peer: RawPeer,
                                          hooked: list[tuple[str, str, str]]) -> None:
    options = invite(peer.port, DID, call_id="raw-5").replace("INVITE", "OPTIONS")
    peer.send(options, stack.address)
    assert await peer.next_status() == 200


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe garbage",
    b"INVITE\r\n\r\n",
    b"SIP/2.0 abc\r\n\r\n",
    b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKq\r\nCSeq: x\r\n\r\n",
    "INVITE sip:\u00e9@y SIP/2.0\r\nContent-Length: -5\r\n\r\n".encode(),
])
async def test_malformed_sip_does_not_stop_the_endpoint(
        stack: SipStack, peer: RawPeer, hooked: list[tuple[str, str, str]],
        garbage: bytes) -> None:
    peer.send(garbage, stack.address)
    peer.send(invite(peer.port, DID, call_id="after-garbage"), stack.address)
    statuses = {await peer.next_status(), await peer.next_status()}
    assert 486 in statuses  # the endpoint still works
    assert [c[2] for c in hooked] == ["after-garbage"]


async def test_request_missing_mandatory_headers_gets_400(
        stack: SipStack, peer: RawPeer, hooked: list[tuple[str, str, str]]) -> None:
    text = invite(peer.port, DID, call_id="raw-6").replace("Call-ID: raw-6\r\n", "")
    peer.send(text, stack.address)
    assert await peer.next_status() == 400
    assert hooked == []


async def test_our_invite_is_retransmitted_over_udp_until_answered(stack: SipStack,
                                                                  peer: RawPeer) -> None:
    caller = SipCaller(stack, trunk_to(("127.0.0.1", peer.port)))
    call = asyncio.ensure_future(caller.voice_call("79001234561", "1234"))
    first = await peer.next()
    second = await peer.next()  # nothing answered: timer A fired
    assert first.startswith("INVITE") and second == first
    busy = second.replace(second.split("\r\n")[0], "SIP/2.0 486 Busy Here", 1)
    busy = busy.replace("\r\nContent-Type: application/sdp", "").split("\r\n\r\n")[0]
    busy = busy.replace("Content-Length: ", "X-Old-Length: ") + "\r\nContent-Length: 0\r\n\r\n"
    busy = busy.replace(";tag=", ";tag=", 1)
    lines = busy.split("\r\n")
    lines = [line + ";tag=callee" if line.startswith("To:") else line for line in lines]
    peer.send("\r\n".join(lines), stack.address)
    result = await call
    assert result.end is CallEnd.BUSY
    acked = await peer.next()
    while not acked.startswith("ACK"):  # a retransmission may have crossed our 486
        acked = await peer.next()
    assert "tag=callee" in acked and "CSeq: 1 ACK" in acked


async def test_silent_network_is_a_temporary_failure(stack: SipStack, peer: RawPeer) -> None:
    result = await SipCaller(stack, trunk_to(("127.0.0.1", peer.port))).flash_call(
        "79001234561", "1234")
    assert result.end is CallEnd.NETWORK and result.status == 408  # timer B stood in
    assert peer.received.qsize() >= 5  # T1-doubling retransmissions within 64*T1


async def test_retransmission_after_the_ack_still_gets_the_same_answer(
        stack: SipStack, peer: RawPeer, hooked: list[tuple[str, str, str]]) -> None:
    peer.send(invite(peer.port, DID, call_id="raw-7", branch="z9hG4bKraw7"), stack.address)
    assert await peer.next_status() == 100
    first = await peer.next()
    peer.send(ack(peer.port, DID, to_tag(first), call_id="raw-7", branch="z9hG4bKraw7"),
              stack.address)
    txn = next(t for t in stack._servers.values()
               if isinstance(t, ServerTransaction) and t.request.call_id == "raw-7")
    async with asyncio.timeout(2):
        await txn.acked.wait()
    stack._shrink(txn)  # what the linger does next: keep only the answer's bytes
    assert not isinstance(stack._servers[txn.key], ServerTransaction)
    peer.send(invite(peer.port, DID, call_id="raw-7", branch="z9hG4bKraw7"), stack.address)
    assert await peer.next() == first
    assert len(hooked) == 1
