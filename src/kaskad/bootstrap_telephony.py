"""Telephony for the Gateway (bootstrap.py): voice and flash calls as cascade channels, our SIP
endpoint for incoming calls, and in the sandbox the phone network they talk to.

Modes (Settings.effective_telephony_mode):
  sip        the declared trunks; the pool is their DIDs.
  simulator  the sandbox phone network on a loopback port, reached over real SIP through a
             trunk to it (serve and demo without trunks); the pool is `[telephony] pool`.
  inprocess  no SIP at all: the in-process sandbox channels; calls are "placed" by calling
             IncomingCalls.on_call directly (engine tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from kaskad.channels.base import Delivery, SendResult
from kaskad.channels.telephony.calls import SipCaller
from kaskad.channels.telephony.channel import send_result
from kaskad.channels.telephony.endpoint import Telephony
from kaskad.channels.telephony.incoming import RejectedCall
from kaskad.channels.telephony.settings import FlashRange, HostPort, TrunkSettings
from kaskad.config import Settings
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.services.wait_call import normalize_party

log = structlog.get_logger(__name__)

OnCall = Callable[[str, str], Awaitable[str]]  # (caller, callee) -> disposition
LangOf = Callable[[int], Awaitable[str]]


class CallChannel:
    """Voice or flash calls over whichever SipCaller telephony has once it started (the
    sandbox's trunk address is known only then); the prompt's language is the account's."""

    def __init__(self, name: ChannelName, lang_of: LangOf) -> None:
        self.name = name
        self.lang_of = lang_of
        self.caller: SipCaller | None = None

    async def send(self, delivery: Delivery) -> SendResult:
        if self.caller is None:
            return SendResult(Outcome.REJECTED_TEMPORARY, None, "telephony not started")
        if self.name is ChannelName.FLASH_CALL:
            return send_result(await self.caller.flash_call(delivery.number, delivery.code))
        lang = await self.lang_of(delivery.account_id)
        return send_result(await self.caller.voice_call(delivery.number, delivery.code, lang))

    @property
    def max_send_s(self) -> float:
        """How long one call may take (the engine keeps the step's lease that long): ringing,
        then for a voice call the prompt twice (an 8-digit code: ~12 s), with margin."""
        if self.caller is None:
            return 0.0
        trunk = self.caller.trunk
        if self.name is ChannelName.FLASH_CALL:
            return trunk.flash_timeout + 10.0
        return trunk.ring_timeout + 30.0

    async def close(self) -> None:
        return None  # the SIP endpoint is stopped by TelephonyWiring


class TelephonyWiring:
    def __init__(self, settings: Settings, on_call: OnCall, lang_of: LangOf) -> None:
        self.settings = settings
        self.mode = settings.effective_telephony_mode
        self.on_call = on_call
        self.voice = CallChannel(ChannelName.VOICE, lang_of)
        self.flash = CallChannel(ChannelName.FLASH_CALL, lang_of)
        self.telephony: Telephony | None = None
        self.phones: object | None = None  # kaskad.simulators.phones.PhoneNetwork
        self._last: dict[tuple[str, str], str] = {}  # (caller, callee) -> the latest disposition

    @property
    def uses_sip(self) -> bool:
        return self.mode != "inprocess"

    def pool(self) -> list[str]:
        """The numbers subscribers call for wait_call."""
        if self.mode == "sip":
            return [did for trunk in self.settings.sip.trunks for did in trunk.dids]
        return self.settings.telephony.pool

    async def start(self) -> None:
        if not self.uses_sip:
            return
        endpoint = self.settings.sip_endpoint
        if self.mode == "simulator":
            endpoint = endpoint.model_copy(update={"trunks": [await self._sandbox_trunk()]})
        self.telephony = Telephony(endpoint, self._incoming, on_rejected=self._rejected)
        await self.telephony.start()
        caller = self.telephony.caller()
        self.voice.caller = self.flash.caller = caller
        log.info("SIP endpoint up", address=self.telephony.address, dids=sorted(self.pool()))

    async def _sandbox_trunk(self) -> TrunkSettings:
        from kaskad.simulators.phones import PhoneNetwork
        from kaskad.simulators.world import World

        phones = PhoneNetwork("127.0.0.1", 0, world=World(self.settings.sandbox.rules))
        await phones.start()
        self.phones = phones
        host, port = phones.address
        t = self.settings.telephony
        return TrunkSettings(name="sandbox", proxy=HostPort(host=host, port=port),
                             dids=list(t.pool), voice_caller=t.voice_caller,
                             flash_range=FlashRange(prefix=t.flash_prefix,
                                                    digits=11 - len(t.flash_prefix)),
                             ring_timeout=10.0, flash_timeout=5.0)

    async def _incoming(self, caller: str, callee: str, call_id: str) -> bool:
        disposition = await self.on_call(caller, callee)
        self._last[(caller, callee)] = disposition
        if len(self._last) > 10_000:
            self._last.clear()
        return disposition in ("matched", "repeat")

    async def _rejected(self, call: RejectedCall) -> None:
        if call.status == 404:  # not one of our numbers: recorded like any other call
            await self.on_call(call.caller, call.callee)

    async def place_call(self, caller: str, callee: str) -> str:
        """The sandbox's subscriber calls `callee`: over SIP through the phone network when it
        runs (the answer is the SIP status), else straight to the matcher."""
        phones = self.phones
        if phones is None or self.telephony is None:
            return await self.on_call(caller, callee)
        status = await phones.call(caller, callee, self.telephony.address)  # type: ignore[attr-defined]
        key = (normalize_party(caller) or caller, normalize_party(callee) or callee)
        return self._last.pop(key, f"sip {status}")

    @property
    def address(self) -> tuple[str, int] | None:
        return self.telephony.address if self.telephony is not None else None

    async def stop(self) -> None:
        if self.telephony is not None:
            await self.telephony.stop()
            self.telephony = None
        if self.phones is not None:
            await self.phones.stop()  # type: ignore[attr-defined]
            self.phones = None
