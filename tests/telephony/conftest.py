"""Fixtures for the SIP tests: our stack and the sandbox phones on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kaskad.channels.telephony.calls import SipCaller
from kaskad.channels.telephony.settings import FlashRange, HostPort, TrunkSettings
from kaskad.channels.telephony.stack import SipStack
from kaskad.channels.telephony.transactions import Timers
from kaskad.simulators.phones import PhoneNetwork

FAST = Timers(t1=0.05, t2=0.4, t4=0.5)


@pytest.fixture
async def phones() -> AsyncIterator[PhoneNetwork]:
    network = PhoneNetwork(timers=FAST)
    await network.start()
    yield network
    await network.stop()


@pytest.fixture
async def stack() -> AsyncIterator[SipStack]:
    ours = SipStack(timers=FAST)
    await ours.start()
    yield ours
    await ours.stop()


def trunk_to(address: tuple[str, int], **changes: object) -> TrunkSettings:
    base: dict[str, object] = dict(
        proxy=HostPort(host=address[0], port=address[1]), voice_caller="74950000000",
        flash_range=FlashRange(prefix="7495123", digits=4), calls_per_second=1000,
        ring_timeout=5, flash_timeout=3)
    base.update(changes)
    return TrunkSettings.model_validate(base)


@pytest.fixture
def caller(stack: SipStack, phones: PhoneNetwork) -> SipCaller:
    return SipCaller(stack, trunk_to(phones.address))
