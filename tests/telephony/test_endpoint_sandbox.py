"""The whole telephony endpoint against the sandbox phones: both directions, UDP and TCP."""

from __future__ import annotations

import pytest

from kaskad.channels.telephony.endpoint import Telephony
from kaskad.channels.telephony.incoming import RejectedCall
from kaskad.channels.telephony.settings import SipEndpointSettings
from kaskad.simulators.phones import PhoneNetwork
from tests.telephony.conftest import FAST, trunk_to


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_phones_call_our_pool_number_and_the_voice_call_goes_out(
        phones: PhoneNetwork, transport: str) -> None:
    hooked: list[tuple[str, str, str]] = []
    rejected: list[RejectedCall] = []

    async def on_incoming(caller: str, callee: str, call_id: str) -> bool:
        hooked.append((caller, callee, call_id))
        return caller == "79161234567"

    async def on_rejected(call: RejectedCall) -> None:
        rejected.append(call)

    trunk = trunk_to(phones.address, dids=["79990001122", "79990001133"], transport=transport)
    telephony = Telephony(SipEndpointSettings(trunks=[trunk]), on_incoming,
                          on_rejected=on_rejected, timers=FAST)
    await telephony.start()
    try:
        status = await phones.call("89161234567", "79990001122", telephony.address,
                                   transport=transport)
        assert status == 486
        assert [h[:2] for h in hooked] == [("79161234567", "79990001122")]
        assert await phones.call("79160000000", "79990001133", telephony.address) == 486
        assert await phones.call("79160000000", "79990009999", telephony.address) == 404
        assert [(r.callee, r.status) for r in rejected] == [("79990001133", 486),
                                                            ("79990009999", 404)]
        result = await telephony.caller().flash_call("79001234565", "9876")
        assert result.delivered
    finally:
        await telephony.stop()
