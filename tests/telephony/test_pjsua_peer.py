"""Our SIP code against PJSIP (pjsua2), an independent stack, over loopback."""

from __future__ import annotations

import asyncio

import pytest

from kaskad.channels.telephony import prompts
from kaskad.channels.telephony.calls import CallEnd, SipCaller
from kaskad.channels.telephony.incoming import IncomingCalls, RejectedCall
from kaskad.channels.telephony.rtp import packetise
from kaskad.channels.telephony.stack import SipStack
from tests.telephony.conftest import trunk_to
from tests.telephony.pjsua import pjsua_peer

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_voice_call_answered_by_pjsua_receives_the_prompt(stack: SipStack,
                                                                transport: str) -> None:
    async with pjsua_peer("answer") as peer:
        address = peer.udp if transport == "udp" else peer.tcp
        caller = SipCaller(stack, trunk_to(address, transport=transport))
        result = await caller.voice_call("79001234560", "2580", "en")
        assert result.delivered and result.end is CallEnd.ANSWERED
        ended = await peer.wait_for(lambda e: e["event"] == "ended")
        expected = len(packetise(prompts.assemble("2580", "en")))
        assert result.packets_sent == expected
        # pjsua counts what reached it; a handful may land before its stream is up
        assert expected - 10 <= ended["rx_packets"] <= expected
        assert ended["jitter_ms"] < 10


async def test_flash_call_cancelled_and_the_487_acked_on_the_invite_branch(
        stack: SipStack) -> None:
    async with pjsua_peer("ring") as peer:
        caller = SipCaller(stack, trunk_to(peer.udp))
        result = await caller.flash_call("79001234565", "7391")
        assert result.delivered and result.end is CallEnd.RANG and result.status == 487
        incoming = await peer.wait_for(lambda e: e["event"] == "incoming")
        assert f"sip:{result.caller_id}@" in incoming["from"]
        assert result.caller_id.endswith("7391")
        invite = await peer.wait_for(lambda e: e["event"] == "rx"
                                     and e["start"].startswith("INVITE"))
        ack = await peer.wait_for(lambda e: e["event"] == "rx" and e["start"].startswith("ACK"))
        assert ack["branch"] == invite["branch"]  # the non-2xx ACK is part of the INVITE txn
        assert ack["cseq"].split()[0] == invite["cseq"].split()[0]
        assert peer.matching(lambda e: e["event"] == "rx" and e["start"].startswith("CANCEL"))


async def test_busy_pjsua_gets_its_486_acked(stack: SipStack) -> None:
    async with pjsua_peer("busy") as peer:
        result = await SipCaller(stack, trunk_to(peer.udp)).voice_call("79001234561", "1234")
        assert (result.end, result.status) == (CallEnd.BUSY, 486)
        await peer.wait_for(lambda e: e["event"] == "rx" and e["start"].startswith("ACK"))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_incoming_call_from_pjsua_is_rejected_busy_and_hooked_once(
        stack: SipStack, transport: str) -> None:
    seen: list[tuple[str, str, str]] = []

    async def on_incoming(caller: str, callee: str, call_id: str) -> bool:
        seen.append((caller, callee, call_id))
        return True

    stack.handler = IncomingCalls(["79990001122"], on_incoming)
    async with pjsua_peer(user="89161234567") as peer:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        await peer.call(f"sip:79990001122@127.0.0.1:{stack.port}{suffix}")
        ended = await peer.wait_for(lambda e: e["event"] == "ended")
        assert ended["status"] == 486
        assert seen == [("79161234567", "79990001122", ended["call_id"])]


async def test_call_from_pjsua_to_an_unknown_number_is_404_and_recorded(
        stack: SipStack) -> None:
    rejected: list[RejectedCall] = []
    hooked = asyncio.Event()

    async def on_incoming(caller: str, callee: str, call_id: str) -> bool:
        hooked.set()
        return True

    async def on_rejected(call: RejectedCall) -> None:
        rejected.append(call)

    stack.handler = IncomingCalls(["79990001122"], on_incoming, on_rejected=on_rejected)
    async with pjsua_peer() as peer:
        await peer.call(f"sip:79990009999@127.0.0.1:{stack.port}")
        ended = await peer.wait_for(lambda e: e["event"] == "ended")
        assert ended["status"] == 404
        assert [(c.callee, c.status) for c in rejected] == [("79990009999", 404)]
        assert not hooked.is_set()
