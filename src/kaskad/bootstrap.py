"""The one place that builds everything. Nothing connects at import time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import func, select

from kaskad.bootstrap_telephony import TelephonyWiring
from kaskad.channels.base import Channel, Delivery, ReportSink
from kaskad.channels.incoming_call import IncomingCallChannel
from kaskad.channels.sandbox import sandbox_channels
from kaskad.channels.sms.channel import SmsChannel
from kaskad.channels.sms.connector import MobileOriginated, SmppConnector
from kaskad.channels.telegram.channel import TelegramChannel, TelegramOptions
from kaskad.channels.telegram.client import TelegramGatewayClient
from kaskad.config import ConnectorSettings, Settings
from kaskad.domain.callbacks import (
    call_hook_url,
    final_callback_body,
    message_status_body,
    new_event_id,
)
from kaskad.domain.cascade import State
from kaskad.domain.channels import ChannelName
from kaskad.domain.clock import Clock, system_clock, to_ms
from kaskad.domain.numbering import NumberingPlan, detailed_direction
from kaskad.domain.sms import decode_payload
from kaskad.domain.ssms import state_text
from kaskad.engine.bus import Predicate, StateBus
from kaskad.engine.callbacks import CallbackSender
from kaskad.engine.scheduler import Engine
from kaskad.metrics import Metrics
from kaskad.services.account_settings import SettingsCache
from kaskad.services.auth import Authenticator
from kaskad.services.messages import message_state
from kaskad.services.reports import ReportHandler
from kaskad.services.send_code import SendCode
from kaskad.services.send_sms import SendSms
from kaskad.services.wait_call import IncomingCalls, WaitCall
from kaskad.simulators.telegram_gateway import TelegramGatewaySim
from kaskad.simulators.world import Voice, World
from kaskad.storage.accounts import get_settings
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.channel_health import ChannelHealthStore
from kaskad.storage.db import Database
from kaskad.storage.mo import NewMo, StoreMo
from kaskad.storage.numbering import load_plan
from kaskad.storage.outbox import ClaimOutbox, FinishOutbox, callback_secret
from kaskad.storage.schema import numbering_ranges
from kaskad.storage.verifications import (
    ApplyReports,
    ClaimDue,
    CreateVerifications,
    RecordOutcomes,
    Transitions,
    Verification,
    get_verification,
)

log = structlog.get_logger(__name__)

ChannelFactory = Callable[[ReportSink], Sequence[Channel]]
TELEGRAM_WEBHOOK_PATH = "/webhooks/telegram"
SIMULATOR_PATH = "/sandbox/telegram"  # where `serve` mounts the built-in Telegram simulator


def _log_failed_mo(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a mobile-originated message was not stored", error=repr(future.exception()))


class Gateway:
    """Every long-lived part of a running kaskad, wired together."""

    def __init__(self, settings: Settings, *, clock: Clock = system_clock,
                 channels: ChannelFactory | None = None, db: Database | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.db = db or Database(settings.effective_database_url)
        self.batcher = WriteBatcher(self.db, max_batch=settings.write_batch,
                                    coalesce_s=settings.write_coalesce_ms / 1000,
                                    writers=1 if self.db.is_sqlite else settings.pg_writers)
        self.bus = StateBus()
        self.transitions = Transitions(
            self.db, settings.timeouts, (settings.max_temporary_retries, settings.retry_backoff_s),
            self._callback_for, settings.node_id, settings.lease_s)
        self.create_op = CreateVerifications(self.db)
        self.store_mo_op = StoreMo(self.db)
        self.record_op = RecordOutcomes(self.transitions)
        self.reports_op = ApplyReports(self.transitions)
        self.engine = Engine(
            batcher=self.batcher, channels={}, claim_op=ClaimDue(self.db),
            record_op=self.record_op, bus=self.bus, clock=clock, node_id=settings.node_id,
            lease_s=settings.lease_s, poll_interval_s=settings.poll_interval_s,
            claim_batch=settings.claim_batch, max_in_flight=settings.max_in_flight,
            db=self.db, max_backlog=settings.max_backlog, admit_wait_s=settings.admit_wait_s)
        self.reports = ReportHandler(batcher=self.batcher, op=self.reports_op,
                                     engine=self.engine, bus=self.bus, clock=clock)
        self.channel_health = ChannelHealthStore(self.db, clock)
        self.telegram_sim: TelegramGatewaySim | None = None
        self.smsc_sim: Any = None  # kaskad.simulators.smsc.SmscSimulator in "simulator" mode
        self.smsc_port: int | None = None
        self._numbering_task: asyncio.Task[None] | None = None
        self._senders: dict[int, tuple[float, str | None]] = {}
        self._dialing: set[asyncio.Task[str]] = set()
        # the sandbox's subscribers place calls on demand (POST /sandbox/calls)
        self.sandbox_calls = settings.effective_telephony_mode != "sip"
        self.telephony = TelephonyWiring(
            settings, on_call=lambda caller, callee: self.incoming_calls.on_call(caller, callee),
            lang_of=self._lang_of)
        factory = channels or self._sandbox
        self.channels = list(factory(self.reports))
        self.engine.channels = {c.name: c for c in self.channels}
        self.auth = Authenticator(self.db, clock, settings.auth_cache_ttl_s)
        self.numbering = NumberingPlan([])  # loaded in start(), refreshed by reload_numbering()
        self._numbering_stamp: tuple[int, int | None] = (-1, None)
        self.send_code = SendCode(
            auth=self.auth, batcher=self.batcher, create_op=self.create_op, engine=self.engine,
            bus=self.bus, clock=clock, node_id=settings.node_id, lease_s=settings.lease_s,
            wait_s=settings.send_wait_s,
            direction_of=self._direction, default_resending=self._default_resending)
        self.account_settings = SettingsCache(self.db, clock, settings.auth_cache_ttl_s)
        self.send_sms = SendSms(
            batcher=self.batcher, create_op=self.create_op, engine=self.engine, clock=clock,
            node_id=settings.node_id, lease_s=settings.lease_s, direction_of=self._direction)
        self.wait_call = WaitCall(
            db=self.db, batcher=self.batcher, create_op=self.create_op, engine=self.engine,
            clock=clock, node_id=settings.node_id, lease_s=settings.lease_s,
            pool=self.telephony.pool, direction_of=self._direction)
        self.incoming_calls = IncomingCalls(
            db=self.db, batcher=self.batcher, reports_op=self.reports_op,
            after=self.reports.after, clock=clock, pool=self.telephony.pool)
        self.callbacks = CallbackSender(
            batcher=self.batcher, claim_op=ClaimOutbox(self.db), finish_op=FinishOutbox(self.db),
            clock=clock, timeout_s=settings.callback_timeout_s,
            max_attempts=settings.callback_max_attempts,
            backoff_base_s=settings.callback_backoff_s,
            backoff_cap_s=settings.callback_backoff_cap_s,
            concurrency=settings.callback_concurrency,
            allow_private=settings.callback_allow_private,
            poll_interval_s=settings.poll_interval_s, secret_of=self._callback_secret)
        self.bus.listen(self._on_change)
        self.started = False

    async def _default_resending(self, account_id: int) -> str | None:
        """The account's default cascade for requests that name none (cached settings)."""
        return (await self.account_settings.get(account_id)).default_resending

    async def _lang_of(self, account_id: int) -> str:
        """The language of what a subscriber hears or reads for this account (voice prompts)."""
        return (await self.account_settings.get(account_id)).lang

    def _direction(self, digits: str, country: str) -> str:
        """The direction tariffs and routes use: "RU:mts" when the numbering plan knows it."""
        return detailed_direction(country, digits, self.numbering)

    def _sandbox_subscriber_calls(self, delivery: Delivery) -> None:
        """The sandbox's subscriber does what wait_call asks (by the world's voice rule: a
        phone that answers calls also calls back), so every flow runs without telephony."""
        sb = self.settings.sandbox
        rule = World(sb.rules).behaviour(delivery.number).voice
        if rule is Voice.NO_ANSWER or not delivery.call_to:
            return
        delay = sb.slow_delay_s if rule is Voice.SLOW else sb.report_delay_s
        caller, callee = delivery.number, delivery.call_to

        def dial() -> None:
            task = asyncio.create_task(self.telephony.place_call(caller, callee))
            self._dialing.add(task)
            task.add_done_callback(self._dialing.discard)

        asyncio.get_running_loop().call_later(delay, dial)

    def _sandbox(self, sink: ReportSink) -> Sequence[Channel]:
        """The default channels: Telegram per `telegram_mode`; SMS and voice in the sandbox
        until their adapters land."""
        sb = self.settings.sandbox
        world = World(sb.rules)
        channels: list[Channel] = list(sandbox_channels(world, sink, sb.report_delay_s,
                                                        sb.slow_delay_s))
        channels.append(IncomingCallChannel(
            on_wait=None if self.telephony.mode == "sip" else self._sandbox_subscriber_calls))
        if self.telephony.uses_sip:  # voice and flash calls over SIP instead of in-process
            channels = [c for c in channels
                        if c.name not in (ChannelName.VOICE, ChannelName.FLASH_CALL)]
            channels += [self.telephony.voice, self.telephony.flash]
        mode = self.settings.effective_telegram_mode
        if mode != "inprocess":
            channels = [c for c in channels if c.name is not ChannelName.TELEGRAM]
            channels.insert(0, self._telegram(sink, world, mode))
        sms_mode = self.settings.effective_sms_mode
        if sms_mode != "inprocess":
            channels = [c for c in channels if c.name is not ChannelName.SMS]
            channels.append(self._sms(sink, world, sms_mode))
        return channels

    def _sms(self, sink: ReportSink, world: World, mode: str) -> SmsChannel:
        smpp = self.settings.smpp
        channel = SmsChannel([], sink, sender=smpp.sender, mo_sink=self._store_mo)
        if mode == "simulator":  # connected in start(), once the simulator has its port
            from kaskad.simulators.smsc import SmscSimulator

            sb = self.settings.sandbox
            self.smsc_sim = SmscSimulator(system_id="kaskad", password="sandbox", world=world,
                                          receipt_delay_s=sb.report_delay_s,
                                          slow_delay_s=sb.slow_delay_s)
        else:
            channel.connectors = [SmppConnector(c, on_receipt=channel.on_receipt,
                                                on_mo=channel.on_mo)
                                  for c in smpp.connectors]
        return channel

    def _store_mo(self, connector: str, mo: MobileOriginated) -> asyncio.Future[None]:
        future = self.batcher.enqueue(self.store_mo_op, NewMo(
            connector, mo.source, mo.destination, decode_payload(mo.short_message,
                                                                 mo.data_coding),
            mo.data_coding, to_ms(self.clock())))
        future.add_done_callback(_log_failed_mo)
        return future

    async def _start_smsc_simulator(self) -> None:
        """The built-in SMSC on a loopback port, and one connector to it (the demo's)."""
        sms = self.engine.channels.get(ChannelName.SMS)
        if self.smsc_sim is None or not isinstance(sms, SmsChannel):
            return
        port = await self.smsc_sim.start("127.0.0.1", 0)
        self.smsc_port = port
        settings = ConnectorSettings(name="sandbox", host="127.0.0.1", port=port,
                                     system_id="kaskad", password="sandbox")
        sms.connectors = [SmppConnector(settings, on_receipt=sms.on_receipt, on_mo=sms.on_mo)]

    def _telegram(self, sink: ReportSink, world: World, mode: str) -> TelegramChannel:
        s = self.settings
        public = s.effective_public_url
        if mode == "simulator":
            sb = s.sandbox
            self.telegram_sim = TelegramGatewaySim(sb.telegram_token, world=world,
                                                   report_delay_s=sb.report_delay_s)
            url, token, callback = f"{public}{SIMULATOR_PATH}/", sb.telegram_token, True
        else:
            url, token, callback = s.telegram_url, s.telegram_token, bool(s.public_url)
            if not callback:
                log.warning("KASKAD_PUBLIC_URL is not set: Telegram delivery reports cannot "
                            "reach this gateway; statuses are polled when a step times out")
        client = TelegramGatewayClient(token, base_url=url, timeout_s=s.telegram_http_timeout_s,
                                       proxy=s.telegram_proxy or None, retries=s.telegram_retries)
        options = TelegramOptions(
            callback_url=f"{public}{TELEGRAM_WEBHOOK_PATH}" if callback else None,
            ttl_s=s.effective_telegram_ttl_s, negative_cache_s=s.telegram_negative_cache_s)
        return TelegramChannel(client, sink, health=self.channel_health, clock=self.clock,
                               options=options, sender_for=self._telegram_sender)

    async def _telegram_sender(self, account_id: int) -> str | None:
        """The account's own sender_username, else the gateway's default; cached a minute."""
        now = self.clock()
        cached = self._senders.get(account_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.read() as conn:
            own = (await get_settings(conn, account_id)).telegram_sender
        sender = own or self.settings.telegram_sender or None
        self._senders[account_id] = (now + 60.0, sender)
        return sender

    @property
    def telegram(self) -> TelegramChannel | None:
        found = self.engine.channels.get(ChannelName.TELEGRAM)
        return found if isinstance(found, TelegramChannel) else None

    async def channel_status(self) -> dict[str, dict[str, object]]:
        """Each channel's shared health, for /health and /metrics."""
        now_ms = to_ms(self.clock())
        status: dict[str, dict[str, object]] = {}
        for channel in self.channels:
            health = await self.channel_health.get(channel.name.value)
            paused = health.paused_until_ms > now_ms
            entry: dict[str, object] = {
                "healthy": health.healthy and not paused, "paused": paused,
                "detail": health.detail if (paused or not health.healthy) else ""}
            if isinstance(channel, SmsChannel):  # live bind status per SMPP connector
                binds = {c.name: c.up for c in channel.connectors}
                entry["connectors"] = binds
                if binds and not any(binds.values()):
                    entry.update(healthy=False, detail="no SMSC bound")
            status[channel.name.value] = entry
            self.metrics.channel_healthy.labels(channel.name.value).set(
                1 if entry["healthy"] else 0)
        if self.telegram is not None:
            for event, count in self.telegram.stats.items():
                self.metrics.telegram.labels(event).set(count)
        return status

    def _callback_for(self, v: Verification) -> tuple[str, str, str, str] | None:
        """The outbox entry for a final state: (method, url, body, event id); a wait_call's
        is a GET, sent only when the call came."""
        if not v.callback_url or v.finished_at is None:
            return None
        tz = self.settings.timezone
        if v.kind == "call":
            if v.state is not State.CALL or not v.call_to:
                return None
            return "GET", call_hook_url(v.callback_url, id_call=v.request_id, caller=v.number,
                                        call_to=v.call_to, finished_ms=v.finished_at,
                                        tz=tz), "", new_event_id()
        if v.kind == "sms":
            state = message_state(v)
            body = message_status_body(
                msg_id=v.msg_id, external_id=v.external_id, phone=v.number, state=state,
                state_text=state_text(state), parts=v.parts, charged_kop=v.charged,
                channel=v.delivered_by, finished_ms=v.finished_at, tz=tz)
            return "POST", v.callback_url, body.decode(), new_event_id()
        body = final_callback_body(request_id=v.request_id, number=v.number, code=v.code,
                                   state=v.state.value, price_kop=v.charged,
                                   finished_ms=v.finished_at, tz=self.settings.timezone)
        return "POST", v.callback_url, body.decode(), new_event_id()

    def _on_change(self, v: Verification) -> None:
        self.metrics.state_changes.inc(v.state)

    async def _callback_secret(self, account_id: int) -> str:
        async with self.db.read() as conn:
            return await callback_secret(conn, account_id)

    async def reload_numbering(self) -> int:
        """Load the numbering plan if the stored one changed (an import by `kaskad numbering
        import` in another process); returns its size."""
        async with self.db.read() as conn:
            size, stamp = (await conn.execute(select(
                func.count(), func.max(numbering_ranges.c.imported_at)))).one()
            if (size, stamp) != self._numbering_stamp:
                self.numbering = await load_plan(conn)
                self._numbering_stamp = (size, stamp)
        return int(size)

    async def _refresh_numbering(self) -> None:
        while True:
            await asyncio.sleep(self.settings.numbering_refresh_s)
            try:
                await self.reload_numbering()
            except Exception as exc:  # the old plan stays in use
                log.warning("numbering plan refresh failed", error=repr(exc))

    async def start(self, *, engine: bool = True, callbacks: bool = True) -> None:
        await self.reload_numbering()
        self._numbering_task = asyncio.create_task(self._refresh_numbering())
        self.batcher.start()
        await self._start_smsc_simulator()
        await self.telephony.start()
        for channel in self.channels:
            starter = getattr(channel, "start", None)
            if starter is not None:
                await starter()
        self.engine.start(claim_loop=engine)
        if callbacks:
            self.callbacks.start()
            self.transitions.outbox = self.callbacks  # new rows go straight to it
        self.started = True

    async def stop(self) -> None:
        if self._numbering_task is not None:
            self._numbering_task.cancel()
            await asyncio.gather(self._numbering_task, return_exceptions=True)
            self._numbering_task = None
        for task in list(self._dialing):
            task.cancel()
        await asyncio.gather(*self._dialing, return_exceptions=True)
        await self.callbacks.stop()
        await self.engine.stop()
        for channel in self.channels:
            await channel.close()
        await self.telephony.stop()
        if self.telegram_sim is not None:
            await self.telegram_sim.stop()
        if self.smsc_sim is not None:
            await self.smsc_sim.stop()
        await self.bus.close()
        await self.batcher.stop()
        await self.db.dispose()
        self.started = False

    async def await_state(self, request_id: str, predicate: Predicate,
                          timeout_s: float) -> Verification | None:
        """The verification once `predicate` holds for it (changes made by this node), or the
        stored row when `timeout_s` passes first."""
        waiter = self.bus.waiter(request_id, predicate)
        try:
            async with self.db.read() as conn:
                current = await get_verification(conn, request_id)
            if current is not None and predicate(current):
                return current
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            async with self.db.read() as conn:
                return await get_verification(conn, request_id)
        finally:
            self.bus.forget(request_id, waiter)

    def refresh_gauges(self) -> None:
        self.metrics.write_batches.set(self.batcher.batches)
        self.metrics.write_items.set(self.batcher.items)
        self.metrics.write_coalescing.set(int(self.batcher.coalescing))
        self.metrics.backlog.set(self.engine.backlog)
        self.metrics.steps_run.set(self.engine.steps_run)
