"""Voice and flash calls as cascade channels.

A call's fate is known when send() returns (no later delivery report), so the result is final:
DELIVERED, NOT_DELIVERED, or a rejection. The engine decides what comes next.
"""

from __future__ import annotations

from kaskad.channels.base import Delivery, SendResult
from kaskad.channels.telephony.calls import CallResult, SipCaller
from kaskad.domain.channels import ChannelName


def send_result(result: CallResult) -> SendResult:
    detail = f"{result.end.value}" + (f" ({result.status})" if result.status else "")
    if result.detail:
        detail += f": {result.detail}"
    return SendResult(result.outcome, result.call_id, detail)


class VoiceChannel:
    name = ChannelName.VOICE

    def __init__(self, caller: SipCaller) -> None:
        self.caller = caller

    async def send(self, delivery: Delivery) -> SendResult:
        return send_result(await self.caller.voice_call(delivery.number, delivery.code,
                                                        delivery.lang))

    async def close(self) -> None:
        return None  # the SipStack is shared and closed by whoever built it


class FlashCallChannel:
    name = ChannelName.FLASH_CALL

    def __init__(self, caller: SipCaller) -> None:
        self.caller = caller

    async def send(self, delivery: Delivery) -> SendResult:
        return send_result(await self.caller.flash_call(delivery.number, delivery.code))

    async def close(self) -> None:
        return None
