"""REGISTER with digest and refresh against the sandbox registrar; RTP pacing without drift."""

from __future__ import annotations

import asyncio
import time

from kaskad.channels.telephony.registration import Registration
from kaskad.channels.telephony.rtp import PACKET_INTERVAL, RtpSession
from kaskad.channels.telephony.stack import SipStack
from kaskad.simulators.phones import PhoneNetwork
from tests.telephony.conftest import FAST, trunk_to


async def test_register_answers_the_challenge_and_refreshes_before_expiry(
        stack: SipStack) -> None:
    registrar = PhoneNetwork(credentials=("trunkuser", "s3cret"), register_expires=2,
                             timers=FAST)
    await registrar.start()
    registration = Registration(stack, trunk_to(registrar.address, username="trunkuser",
                                                password="s3cret", register=True))
    try:
        registration.start()
        await registrar.wait_until(lambda: len(registrar.registrations) >= 2, within=5)
        assert registration.registered.is_set() and registration.last_status == 200
        assert f":{stack.port}" in registrar.registrations[0]
    finally:
        await registration.stop()
        await registrar.stop()


async def test_register_with_a_wrong_password_is_not_registered(stack: SipStack) -> None:
    registrar = PhoneNetwork(credentials=("trunkuser", "s3cret"), timers=FAST)
    await registrar.start()
    try:
        registration = Registration(stack, trunk_to(registrar.address, username="trunkuser",
                                                    password="wrong"))
        assert await registration.register_once() == 0
        assert registration.last_status == 401 and not registration.registered.is_set()
    finally:
        await registrar.stop()


async def test_rtp_pacing_catches_up_after_a_stalled_loop() -> None:
    """A 100 ms stall must not shift every later packet: the schedule is absolute."""
    receiver = await RtpSession.open("127.0.0.1")
    sender = await RtpSession.open("127.0.0.1")
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, time.sleep, 0.1)  # block the whole loop once, mid-stream
    try:
        await sender.play([b"\xff" * 160] * 50, ("127.0.0.1", receiver.port))
        async with asyncio.timeout(2):
            await receiver.stats.wait_for(50)
        assert abs(receiver.stats.duration - 49 * PACKET_INTERVAL) < 0.03
    finally:
        sender.close()
        receiver.close()
