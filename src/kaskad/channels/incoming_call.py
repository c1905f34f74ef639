"""The incoming-call channel: its "send" opens the wait; the subscriber's call is the report.

Nothing goes out: the wait's pool number was chosen when it was created (kaskad.services.
wait_call), and the report comes from the SIP endpoint (or the sandbox's subscriber) through
IncomingCalls.on_call, matched by the wait's own id as the provider reference.
"""

from __future__ import annotations

from collections.abc import Callable

from kaskad.channels.base import Delivery, SendResult
from kaskad.domain.channels import ChannelName, Outcome


class IncomingCallChannel:
    name = ChannelName.INCOMING_CALL

    def __init__(self, on_wait: Callable[[Delivery], None] | None = None) -> None:
        self.on_wait = on_wait  # the sandbox's subscriber, who dials when asked to

    async def send(self, delivery: Delivery) -> SendResult:
        if not delivery.call_to:
            return SendResult(Outcome.REJECTED_PERMANENT, None, "no pool number")
        if self.on_wait is not None:
            self.on_wait(delivery)
        return SendResult(Outcome.ACCEPTED, delivery.request_id,
                          f"waiting for a call to {delivery.call_to}")

    async def close(self) -> None:
        return None
