"""All of telephony for bootstrap.py to build: one SIP endpoint, a caller and a registration
per trunk, and the incoming-call handler for every trunk's DIDs."""

from __future__ import annotations

from kaskad.channels.telephony.calls import SipCaller
from kaskad.channels.telephony.incoming import IncomingCalls, IncomingHook, RejectedHook
from kaskad.channels.telephony.registration import Registration
from kaskad.channels.telephony.settings import SipEndpointSettings
from kaskad.channels.telephony.stack import SipStack
from kaskad.channels.telephony.transactions import Timers


class Telephony:
    def __init__(self, settings: SipEndpointSettings, on_incoming: IncomingHook, *,
                 on_rejected: RejectedHook | None = None, timers: Timers | None = None) -> None:
        self.settings = settings
        dids = [did for trunk in settings.trunks for did in trunk.dids]
        self.incoming = IncomingCalls(dids, on_incoming, on_rejected=on_rejected)
        self.stack = SipStack(settings.listen.host, settings.listen.port,
                              transports=tuple(settings.transports),
                              public_host=settings.public_host, handler=self.incoming,
                              timers=timers)
        self.callers = {trunk.name: SipCaller(self.stack, trunk) for trunk in settings.trunks}
        self.registrations = [Registration(self.stack, trunk) for trunk in settings.trunks
                              if trunk.register_enabled]

    async def start(self) -> None:
        await self.stack.start()
        for registration in self.registrations:
            registration.start()

    async def stop(self) -> None:
        for registration in self.registrations:
            await registration.stop()
        await self.stack.stop()

    def caller(self, trunk: str | None = None) -> SipCaller:
        """The named trunk's caller, or the first trunk's (routing by direction comes later)."""
        if trunk is not None:
            return self.callers[trunk]
        if not self.callers:
            raise LookupError("no SIP trunk configured")
        return next(iter(self.callers.values()))

    @property
    def address(self) -> tuple[str, int]:
        return self.stack.address

    @property
    def dids(self) -> set[str]:
        return set(self.incoming.dids)
