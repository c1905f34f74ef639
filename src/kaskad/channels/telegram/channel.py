"""The Telegram Gateway as a cascade channel.

One send is checkSendAbility, then sendVerificationMessage with the request_id it returned, so a
number is charged once; a number that cannot receive Telegram is rejected permanently at once
(the cascade moves on without waiting) and remembered for a while so that repeated requests do
not ask again. Delivery reports come to our webhook (kaskad.api.webhooks), are verified there and
handed to `handle_report`; a report that never comes is asked for with checkVerificationStatus
when the step's time runs out (`reconcile`). Token and sender errors mark the channel unhealthy
for every node; FLOOD_WAIT_N pauses it for N seconds for every node.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from kaskad.channels.base import Delivery, ProviderCost, ReportSink, SendResult
from kaskad.channels.telegram.client import (
    GatewayError,
    GatewayUnavailable,
    ParamError,
    RequestStatus,
    TelegramGatewayClient,
)
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.clock import Clock, to_ms
from kaskad.domain.telegram import ErrorKind, outcome_of_status
from kaskad.storage.channel_health import ChannelHealthStore

log = structlog.get_logger(__name__)

SenderLookup = Callable[[int], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class TelegramOptions:
    callback_url: str | None = None  # our webhook, as the gateway must call it
    ttl_s: int | None = None  # not delivered within ttl: Telegram refunds its fee
    negative_cache_s: float = 3600.0  # how long "this number has no Telegram" is believed
    probe_interval_s: float = 30.0  # an unhealthy channel lets one send through this often
    dedupe_size: int = 100_000  # remembered (request_id, status, updated_at) of reports


class TtlSet:
    """A bounded set whose members expire: negative answers, seen reports."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: OrderedDict[Any, float] = OrderedDict()

    def add(self, key: Any, until: float) -> None:
        self._items[key] = until
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)

    def has(self, key: Any, now: float) -> bool:
        until = self._items.get(key)
        if until is None:
            return False
        if until <= now:
            del self._items[key]
            return False
        return True

    def discard(self, key: Any) -> None:
        self._items.pop(key, None)


class TelegramChannel:
    name = ChannelName.TELEGRAM

    def __init__(self, client: TelegramGatewayClient, sink: ReportSink, *,
                 health: ChannelHealthStore, clock: Clock,
                 options: TelegramOptions = TelegramOptions(),
                 sender_for: SenderLookup | None = None) -> None:
        self.client = client
        self.sink = sink
        self.health = health
        self.clock = clock
        self.options = options
        self.sender_for = sender_for
        self.no_telegram = TtlSet(100_000)
        self._seen_reports = TtlSet(options.dedupe_size)
        self._prepaid: dict[str, tuple[str, float]] = {}  # number -> (request_id, until)
        self._next_probe = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = {"sent": 0, "no_telegram": 0, "cached_no_telegram": 0, "reports": 0,
                      "duplicate_reports": 0, "errors": 0}

    # ------------------------------------------------------------------ sending

    async def send(self, delivery: Delivery) -> SendResult:
        now = self.clock()
        blocked = await self._blocked(now)
        if blocked is not None:
            return blocked
        if self.no_telegram.has(delivery.number, now):
            self.stats["cached_no_telegram"] += 1
            return SendResult(Outcome.REJECTED_PERMANENT, None, "no Telegram (remembered)")
        try:
            return await self._send(delivery, now)
        except GatewayError as exc:
            return await self._on_error(delivery, exc)
        except GatewayUnavailable as exc:
            self.stats["errors"] += 1
            return SendResult(Outcome.REJECTED_TEMPORARY, None, str(exc)[:200])
        except ParamError as exc:
            return SendResult(Outcome.REJECTED_PERMANENT, None, f"not sent: {exc}")

    async def _send(self, delivery: Delivery, now: float) -> SendResult:
        prepaid = self._prepaid.pop(delivery.number, None)
        if prepaid is not None and prepaid[1] > now:
            request_id = prepaid[0]
        else:
            request_id = (await self.client.check_send_ability(delivery.number)).request_id
        sender = await self.sender_for(delivery.account_id) if self.sender_for else None
        try:
            status = await self.client.send_verification_message(
                delivery.number, code=delivery.code, request_id=request_id,
                sender_username=sender, callback_url=self.options.callback_url,
                payload=delivery.request_id, ttl=self.options.ttl_s)
        except (GatewayError, GatewayUnavailable) as exc:
            if not isinstance(exc, GatewayError) or exc.kind.kind is not ErrorKind.BAD_REQUEST:
                self._remember_prepaid(delivery.number, request_id, now)
            raise
        self.stats["sent"] += 1
        await self._mark_healthy()
        return SendResult(Outcome.ACCEPTED, status.request_id,
                          status.delivery_status or "sent", _cost(status))

    def _remember_prepaid(self, number: str, request_id: str, now: float) -> None:
        """A paid check whose send failed: the retry reuses it (bounded, expiring)."""
        if len(self._prepaid) >= 10_000:
            self._prepaid = {n: v for n, v in self._prepaid.items() if v[1] > now}
        if len(self._prepaid) < 10_000:
            self._prepaid[number] = (request_id, now + 600)

    async def _blocked(self, now: float) -> SendResult | None:
        health = await self.health.get(self.name.value)
        if health.paused_until_ms > to_ms(now):
            return SendResult(Outcome.REJECTED_TEMPORARY, None, f"paused: {health.detail}")
        if not health.healthy:
            if now < self._next_probe:
                return SendResult(Outcome.REJECTED_PERMANENT, None,
                                  f"Telegram unhealthy: {health.detail}")
            self._next_probe = now + self.options.probe_interval_s  # let this one probe
        return None

    async def _mark_healthy(self) -> None:
        health = await self.health.get(self.name.value)
        if not health.healthy:
            log.info("Telegram Gateway is healthy again")
            await self.health.set_healthy(self.name.value, True, "")

    async def _on_error(self, delivery: Delivery, exc: GatewayError) -> SendResult:
        kind = exc.kind
        if kind.kind is ErrorKind.NO_TELEGRAM:
            self.stats["no_telegram"] += 1
            self.no_telegram.add(delivery.number, self.clock() + self.options.negative_cache_s)
        elif kind.kind is ErrorKind.FLOOD:
            await self.health.pause(self.name.value, kind.wait_s, exc.error)
        elif kind.kind is ErrorKind.CONFIG:
            log.error("Telegram Gateway refuses our credentials", error=exc.error)
            self._next_probe = self.clock() + self.options.probe_interval_s
            await self.health.set_healthy(self.name.value, False, exc.error)
        else:
            self.stats["errors"] += 1
            if kind.kind is ErrorKind.UNKNOWN:
                log.warning("unknown Telegram Gateway error, treated as not deliverable",
                            error=exc.error, request_id=delivery.request_id)
        return SendResult(kind.outcome, None, exc.error)

    # ------------------------------------------------------------------ reports

    async def handle_report(self, status: RequestStatus) -> str:
        """A verified report from the webhook; returns what became of it."""
        now = self.clock()
        key = (status.request_id, status.delivery_status, status.delivery_updated_at)
        if self._seen_reports.has(key, now):
            self.stats["duplicate_reports"] += 1
            return "duplicate"
        self._seen_reports.add(key, now + 86400)  # at once: copies arrive concurrently
        outcome = outcome_of_status(status.delivery_status) or Outcome.ACCEPTED
        try:
            await self.sink.report(self.name, status.request_id, outcome,
                                   status.delivery_status or "", _cost(status))
        except BaseException:
            # Not stored: the webhook answers 503, and the gateway's retry must not be taken
            # for a duplicate.
            self._seen_reports.discard(key)
            raise
        self.stats["reports"] += 1
        return "accepted"

    async def reconcile(self, provider_ref: str) -> SendResult | None:
        """The gateway's current word on an attempt whose report did not come."""
        status = await self.client.check_verification_status(provider_ref)
        outcome = outcome_of_status(status.delivery_status)
        if outcome is None:
            return SendResult(Outcome.TIMEOUT, provider_ref, status.delivery_status or "",
                              _cost(status))
        return SendResult(outcome, provider_ref,
                          f"{status.delivery_status} (asked, no report came)", _cost(status))

    def check_code(self, provider_ref: str, code: str) -> None:
        """Tell Telegram the code the subscriber entered (it counts conversion); best effort,
        in the background, never delaying the customer's answer."""
        task = asyncio.create_task(self._check_code(provider_ref, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check_code(self, provider_ref: str, code: str) -> None:
        try:
            await self.client.check_verification_status(provider_ref, code)
        except (GatewayError, GatewayUnavailable, ParamError) as exc:
            log.info("checkVerificationStatus with the code failed", error=str(exc))

    async def revoke(self, provider_ref: str) -> bool:
        return await self.client.revoke_verification_message(provider_ref)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()


def _cost(status: RequestStatus) -> ProviderCost | None:
    if not status.cost_micros and not status.is_refunded:
        return None
    return ProviderCost(status.cost_micros, "USD", status.is_refunded)
