"""Our caller against the sandbox phone network: every way a call can end."""

from __future__ import annotations

import pytest

from kaskad.channels.telephony import prompts
from kaskad.channels.telephony.calls import CallEnd, SipCaller
from kaskad.channels.telephony.rtp import PACKET_INTERVAL, packetise
from kaskad.channels.telephony.stack import SipStack
from kaskad.domain.channels import Outcome
from kaskad.simulators.phones import Phone, PhoneNetwork
from tests.telephony.conftest import trunk_to


async def test_voice_call_answered_plays_the_prompt_twice(caller: SipCaller,
                                                          phones: PhoneNetwork) -> None:
    result = await caller.voice_call("79001234560", "1234", "ru")
    assert result.delivered and result.end is CallEnd.ANSWERED
    assert result.outcome is Outcome.DELIVERED
    expected = len(packetise(prompts.assemble("1234", "ru")))
    assert result.packets_sent == expected
    call = phones.calls[0]
    await phones.wait_until(lambda: call.ended.is_set())
    assert call.hung_up_by_caller and call.final_acked
    assert call.caller_id == "74950000000"
    assert call.packets == expected
    assert call.rtp is not None and call.rtp.stats.markers == 1
    assert abs(call.rtp.stats.duration - (expected - 1) * PACKET_INTERVAL) < 0.2


@pytest.mark.parametrize(("behaviour", "end", "status"), [
    (Phone.BUSY, CallEnd.BUSY, 486),
    (Phone.REJECTS, CallEnd.REJECTED, 603),
])
async def test_voice_call_refused(stack: SipStack, phones: PhoneNetwork, behaviour: Phone,
                                  end: CallEnd, status: int) -> None:
    phones.overrides["79001234561"] = behaviour
    result = await SipCaller(stack, trunk_to(phones.address)).voice_call("79001234561", "1234")
    assert (result.delivered, result.end, result.status) == (False, end, status)
    assert result.outcome is Outcome.NOT_DELIVERED
    await phones.wait_until(lambda: phones.calls[0].final_acked)  # the non-2xx ACK arrived


async def test_voice_call_not_answered_is_cancelled(stack: SipStack,
                                                    phones: PhoneNetwork) -> None:
    phones.overrides["79001234565"] = Phone.RINGS
    caller = SipCaller(stack, trunk_to(phones.address, ring_timeout=0.3))
    result = await caller.voice_call("79001234565", "1234")
    assert (result.delivered, result.end, result.status) == (False, CallEnd.NO_ANSWER, 487)
    await phones.wait_until(lambda: phones.calls[0].final_acked)
    assert phones.calls[0].cancelled


async def test_flash_call_rings_and_is_cancelled_with_the_code_in_the_caller_id(
        caller: SipCaller, phones: PhoneNetwork) -> None:
    phones.overrides["79001234565"] = Phone.RINGS
    result = await caller.flash_call("79001234565", "4821")
    assert result.delivered and result.end is CallEnd.RANG and result.status == 487
    assert result.caller_id.startswith("7495123") and result.caller_id.endswith("4821")
    await phones.wait_until(lambda: phones.calls[0].final_acked)
    assert phones.calls[0].caller_id == result.caller_id and phones.calls[0].cancelled


async def test_flash_call_answered_before_cancel_is_acked_and_hung_up(
        stack: SipStack, phones: PhoneNetwork) -> None:
    phones.answer_delay = 0.0
    phones.overrides["79001234560"] = Phone.ANSWERS
    result = await SipCaller(stack, trunk_to(phones.address)).flash_call("79001234560", "5555")
    assert result.delivered
    await phones.wait_until(lambda: phones.calls[0].ended.is_set())
    call = phones.calls[0]
    assert (call.answered and call.hung_up_by_caller) or call.cancelled


async def test_unreachable_proxy_is_a_temporary_failure(stack: SipStack) -> None:
    caller = SipCaller(stack, trunk_to(("127.0.0.1", 9), transport="tcp"))
    result = await caller.voice_call("79001234560", "1234")
    assert result.end is CallEnd.NETWORK and result.outcome is Outcome.REJECTED_TEMPORARY


async def test_digest_challenge_is_answered(stack: SipStack) -> None:
    phones = PhoneNetwork(credentials=("trunkuser", "s3cret"))
    await phones.start()
    try:
        phones.overrides["79001234561"] = Phone.BUSY
        trunk = trunk_to(phones.address, username="trunkuser", password="s3cret")
        result = await SipCaller(stack, trunk).voice_call("79001234561", "1234")
        assert result.status == 486  # got past the 407
        wrong = trunk_to(phones.address, username="trunkuser", password="nope")
        refused = await SipCaller(stack, wrong).voice_call("79001234561", "1234")
        assert refused.status == 407 and refused.end is CallEnd.NETWORK
    finally:
        await phones.stop()


async def test_channels_map_calls_onto_cascade_outcomes(stack: SipStack,
                                                        phones: PhoneNetwork) -> None:
    from kaskad.channels.base import Channel, Delivery
    from kaskad.channels.telephony.channel import FlashCallChannel, VoiceChannel

    caller = SipCaller(stack, trunk_to(phones.address))
    phones.overrides["79001234561"] = Phone.BUSY
    phones.overrides["79001234565"] = Phone.RINGS
    voice: Channel = VoiceChannel(caller)
    flash: Channel = FlashCallChannel(caller)
    busy = await voice.send(Delivery("r1", "a1", 1, "79001234561", "1234"))
    assert busy.outcome is Outcome.NOT_DELIVERED and busy.detail.startswith("busy (486)")
    rang = await flash.send(Delivery("r2", "a2", 1, "79001234565", "1234"))
    assert rang.outcome is Outcome.DELIVERED and rang.provider_ref
