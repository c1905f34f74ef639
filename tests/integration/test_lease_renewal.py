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


class GatedTelegram:
    """Telegram whose first send hangs until released; every send is noted (shared by the
    instances of all nodes), and delivers at once."""

    name = ChannelName.TELEGRAM
    max_send_s = 10.0  # the hung send is not cut short by the engine's send timeout

    def __init__(self, release: asyncio.Event, sent: list[str], hung: asyncio.Event) -> None:
        self.release = release
        self.sent = sent
        self.hung = hung  # set once the first send hangs

    async def send(self, delivery: Delivery) -> SendResult:
        self.sent.append(delivery.request_id)
        if len(self.sent) == 1:
            self.hung.set()
            await self.release.wait()
        return SendResult(Outcome.DELIVERED, f"tg-{delivery.attempt_key}", "delivered")

    async def close(self) -> None:
        return None


async def test_a_step_that_waited_out_its_lease_in_the_queue_is_not_sent_twice(
        make_gateway: Any) -> None:
    """A node with one sending slot: the second code waits behind a hung send for longer than
    its lease, so another node claims and sends it. When the slot frees, the first node must
    not send it as well (its lease is renewed before sending, and the renewal fails)."""
    release, hanging = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    def channels(sink: ReportSink) -> list[Any]:
        return [GatedTelegram(release, sent, hanging)]

    lease = {"lease_s": 2.0, "poll_interval_s": 0.05}
    first: Gateway = await make_gateway(channels=channels, max_in_flight=1, node_id="first",
                                        **lease)
    await make_gateway(channels=channels, node_id="other", **lease)  # polls for due work
    admin = Admin(first.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account("acme")).api_key

    def send(number: str) -> asyncio.Task[Any]:
        return asyncio.create_task(first.send_code(SendCodeInput(api_key=key, number=number)))

    hung = send("79001234560")
    await hanging.wait()
    hung_id = sent[0]
    queued = await send("79001234561")  # answered pending: its step waits for the slot
    for _ in range(1000):  # its lease runs out (maybe twice: the first node may claim it
        # back into its own queue) and the other node sends it
        if queued.request_id in sent:
            break
        await asyncio.sleep(0.01)
    assert sent.count(queued.request_id) == 1 and sent.count(hung_id) == 1
    release.set()
    await hung
    await first.engine.idle()
    done = await first.await_state(queued.request_id, lambda x: x.final, 5)
    assert done is not None and done.state.value == "delivered"
    assert sent.count(queued.request_id) == 1, "the queued step was sent twice"
    assert sent.count(hung_id) == 1


async def test_new_requests_wait_while_the_backlog_is_full(make_gateway: Any) -> None:
    """Backpressure: with a backlog of one, a second request is taken only once the first
    step is done (or after admit_wait_s), so intake cannot outrun the channels."""
    release, hanging = asyncio.Event(), asyncio.Event()
    sent: list[str] = []

    def channels(sink: ReportSink) -> list[Any]:
        return [GatedTelegram(release, sent, hanging)]

    gw: Gateway = await make_gateway(channels=channels, max_backlog=1, admit_wait_s=30.0)
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account("acme")).api_key
    first = asyncio.create_task(gw.send_code(SendCodeInput(api_key=key, number="79001234560")))
    await hanging.wait()
    second = asyncio.create_task(gw.send_code(SendCodeInput(api_key=key,
                                                            number="79001234561")))
    await asyncio.sleep(0.5)
    assert not second.done() and len(sent) == 1 and gw.engine.backlog == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert len(sent) == 2
