"""REGISTER with the trunk's registrar and keep the binding fresh (RFC 3261 §10).

The binding is refreshed at 80 % of the expiry the registrar granted (never later than 30 s
before it ends), so an incoming call is never routed to an expired contact.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from kaskad.channels.telephony.dialog import OutgoingDialog
from kaskad.channels.telephony.settings import TrunkSettings
from kaskad.channels.telephony.stack import SipStack

log = structlog.get_logger(__name__)


def refresh_after(granted: int) -> float:
    """Seconds until the next REGISTER for a binding granted for `granted` seconds."""
    return max(1.0, min(granted * 0.8, granted - 30.0))


def granted_expiry(contact: str | None, expires: str | None, asked: int) -> int:
    """The expiry the registrar granted: Contact's expires param, else Expires, else ours."""
    for part in (contact or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "expires" and value.strip().isdigit():
            return int(value)
    if expires and expires.strip().isdigit():
        return int(expires)
    return asked


class Registration:
    """One trunk's registration; `registered` is set while the binding is believed valid."""

    def __init__(self, stack: SipStack, trunk: TrunkSettings) -> None:
        self.stack = stack
        self.trunk = trunk
        user = trunk.username or "kaskad"
        self.dialog = OutgoingDialog.create(stack, trunk.transport, callee=user, caller=user,
                                            domain=trunk.sip_domain)
        self.dialog.request_uri = f"sip:{trunk.sip_domain}"
        self.registered = asyncio.Event()
        self.last_status: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def register_once(self) -> int:
        """One REGISTER (answering one challenge); returns the granted expiry, 0 on failure."""
        dialog = self.dialog
        request = dialog._base("REGISTER", dialog.request_uri, next(dialog.cseq))
        request.set_header("Contact", self.stack.contact(self.trunk.username or "kaskad",
                                                         dialog.kind))
        request.set_header("Expires", str(self.trunk.register_expires))
        txn = await self.stack.request(request, self.trunk.proxy.as_tuple(), dialog.kind)
        final = await txn.final_response()
        if final.status_code in (401, 407):
            retry = dialog.authorised(request, final, self.trunk.username, self.trunk.password)
            if retry is not None:
                txn = await self.stack.request(retry, self.trunk.proxy.as_tuple(), dialog.kind)
                final = await txn.final_response()
        self.last_status = final.status_code
        if not 200 <= final.status_code < 300:
            self.registered.clear()
            log.warning("sip.register_failed", trunk=self.trunk.name, status=final.status_code)
            return 0
        self.registered.set()
        return granted_expiry(final.headers.get_first("contact"),
                              final.headers.get_first("expires"), self.trunk.register_expires)

    async def _keep(self) -> None:
        while True:
            try:
                granted = await self.register_once()
            except OSError as exc:
                log.warning("sip.register_unreachable", trunk=self.trunk.name, error=str(exc))
                granted = 0
            await asyncio.sleep(refresh_after(granted) if granted else 30.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
