"""A step that runs longer than the lease (a voice call rings, then plays its prompt) keeps
its lease while it runs, so no other node claims it and calls the subscriber twice."""

from __future__ import annotations

import asyncio
from typing import Any

from kaskad.bootstrap import Gateway
from kaskad.channels.base import Delivery, ReportSink, SendResult
from kaskad.channels.sandbox import SandboxTelegram
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.services.admin import Admin
from kaskad.services.send_code import SendCodeInput
from kaskad.simulators.world import World


class SlowVoice:
    """A voice channel whose call lasts several leases."""

    name = ChannelName.VOICE
    max_send_s = 10.0

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release
        self.calls = 0

    async def send(self, delivery: Delivery) -> SendResult:
        self.calls += 1
        await self.release.wait()
        return SendResult(Outcome.DELIVERED, f"call-{self.calls}", "answered")

    async def close(self) -> None:
        return None


async def test_a_long_call_keeps_its_lease(make_gateway: Any) -> None:
    release = asyncio.Event()
    voice = SlowVoice(release)

    def channels(sink: ReportSink) -> list[Any]:
        return [SandboxTelegram(World(), sink, 0.01, 0.1), voice]

    lease = {"lease_s": 2.0, "poll_interval_s": 0.05}
    first: Gateway = await make_gateway(channels=channels, **lease)
    other: Gateway = await make_gateway(channels=channels, **lease)  # a second node, polling
    admin = Admin(first.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account("acme")).api_key
    v = await first.send_code(SendCodeInput(api_key=key, number="79001234564",
                                            resending="voice"))
    await asyncio.sleep(5.0)  # two and a half leases: the call is still ringing
    assert voice.calls == 1, "another node claimed the running call and called again"
    release.set()
    done = await first.await_state(v.request_id, lambda x: x.final, 5)
    assert done is not None and done.state.value == "voice" and voice.calls == 1
    assert other.engine.steps_run == 0
