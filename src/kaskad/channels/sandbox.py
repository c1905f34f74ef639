"""In-process sandbox channels driven by the sandbox world's number rules.

They implement the real Channel interface and report through the real ReportSink, so the
engine, ledger and callbacks run exactly as in production; only the provider is simulated.
The real Telegram, SMPP and SIP adapters (and their loopback simulators) replace these.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable

from kaskad.channels.base import Delivery, ReportSink, SendResult
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.simulators.world import Sms, Telegram, Voice, World


class SandboxChannel:
    name: ChannelName

    def __init__(self, world: World, sink: ReportSink, report_delay_s: float,
                 slow_delay_s: float) -> None:
        self.world = world
        self.sink = sink
        self.report_delay_s = report_delay_s
        self.slow_delay_s = slow_delay_s
        self._refs = itertools.count(1)
        self._node = secrets.token_hex(4)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.sent = 0

    async def send(self, delivery: Delivery) -> SendResult:
        raise NotImplementedError

    def _ref(self) -> str:
        """Unique across processes and restarts too (several nodes share one database), like a
        real provider's ids."""
        return f"sbx-{self.name.value}-{self._node}-{next(self._refs)}"

    def _report_later(self, ref: str, outcome: Outcome, delay: float, detail: str) -> None:
        soon = getattr(self.sink, "report_soon", None)
        if soon is not None:  # a timer, not a sleeping task per message
            self._timers[ref] = asyncio.get_running_loop().call_later(
                delay, self._fire, soon, ref, outcome, detail)
            return

        async def _later() -> None:
            await asyncio.sleep(delay)
            await self.sink.report(self.name, ref, outcome, detail)

        task = asyncio.create_task(_later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fire(self, soon: Callable[..., None], ref: str, outcome: Outcome, detail: str) -> None:
        self._timers.pop(ref, None)
        soon(self.name, ref, outcome, detail)

    def _accept_then(self, outcome: Outcome, delay: float, detail: str) -> SendResult:
        ref = self._ref()
        self._report_later(ref, outcome, delay, detail)
        return SendResult(Outcome.ACCEPTED, ref, "accepted")

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class SandboxTelegram(SandboxChannel):
    name = ChannelName.TELEGRAM

    async def send(self, delivery: Delivery) -> SendResult:
        self.sent += 1
        rule = self.world.behaviour(delivery.number).telegram
        if rule is Telegram.ABSENT:
            return SendResult(Outcome.REJECTED_PERMANENT, None, "PHONE_NUMBER_NOT_FOUND")
        if rule is Telegram.BUSY:
            return SendResult(Outcome.REJECTED_TEMPORARY, None, "FLOOD_WAIT_1")
        if rule is Telegram.SILENT:
            return SendResult(Outcome.ACCEPTED, self._ref(), "sent")
        if rule is Telegram.EXPIRES:
            return self._accept_then(Outcome.NOT_DELIVERED, self.report_delay_s, "expired")
        return self._accept_then(Outcome.DELIVERED, self.report_delay_s, "delivered")


class SandboxSms(SandboxChannel):
    name = ChannelName.SMS

    async def send(self, delivery: Delivery) -> SendResult:
        self.sent += 1
        rule = self.world.behaviour(delivery.number).sms
        if rule is Sms.REJECTED:
            return SendResult(Outcome.REJECTED_PERMANENT, None, "ESME_RINVDSTADR")
        if rule is Sms.FAILS:
            return self._accept_then(Outcome.NOT_DELIVERED, self.report_delay_s, "UNDELIV")
        delay = self.slow_delay_s if rule is Sms.SLOW else self.report_delay_s
        return self._accept_then(Outcome.DELIVERED, delay, "DELIVRD")


class SandboxVoice(SandboxChannel):
    name = ChannelName.VOICE

    async def send(self, delivery: Delivery) -> SendResult:
        """A call is synchronous: answered and played, or not."""
        self.sent += 1
        rule = self.world.behaviour(delivery.number).voice
        if rule is Voice.SLOW:
            await asyncio.sleep(self.slow_delay_s)
        if rule is Voice.NO_ANSWER:
            await asyncio.sleep(self.report_delay_s)
            return SendResult(Outcome.NOT_DELIVERED, self._ref(), "no answer")
        return SendResult(Outcome.DELIVERED, self._ref(), "answered, prompt played")


class SandboxFlashCall(SandboxChannel):
    name = ChannelName.FLASH_CALL

    async def send(self, delivery: Delivery) -> SendResult:
        """Rings (delivered: the caller id carries the code) unless the phone never rings."""
        self.sent += 1
        await asyncio.sleep(self.report_delay_s)
        if self.world.behaviour(delivery.number).voice is Voice.NO_ANSWER:
            return SendResult(Outcome.NOT_DELIVERED, self._ref(), "did not ring")
        return SendResult(Outcome.DELIVERED, self._ref(), "rang, cancelled")


def sandbox_channels(world: World, sink: ReportSink, report_delay_s: float,
                     slow_delay_s: float) -> list[SandboxChannel]:
    return [cls(world, sink, report_delay_s, slow_delay_s)
            for cls in (SandboxTelegram, SandboxSms, SandboxVoice, SandboxFlashCall)]
