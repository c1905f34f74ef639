"""The Telegram channel end to end: our real client, over loopback HTTP, against the Telegram
Gateway simulator; its signed reports come back to our webhook served by uvicorn. Runs on both
databases (the cascade, the cost ledger and the shared channel health are stored)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import select

from kaskad.api.app import create_app
from kaskad.bootstrap import Gateway
from kaskad.domain.cascade import State
from kaskad.domain.channels import ChannelName
from kaskad.domain.telegram import sign_report
from kaskad.services.admin import Admin
from kaskad.simulators.telegram_gateway import NumberRule, TelegramGatewaySim
from kaskad.simulators.world import World
from kaskad.storage.schema import attempts, provider_costs, reports
from kaskad.storage.verifications import Verification
from tests.conftest import make_settings

TOKEN = "sim-token-0123456789"
DELIVERS = "79001234560"
NO_TELEGRAM = "79001234564"
SILENT = "79001234563"


@dataclass
class Stack:
    gw: Gateway
    sim: TelegramGatewaySim
    http: httpx.AsyncClient  # to our gateway, over loopback
    base: str
    key: str

    async def send(self, number: str, **extra: Any) -> dict[str, Any]:
        body = {"number": number, "resending": "sms", **extra}
        answer = await self.http.post("/api/send/", json=body,
                                      headers={"Authorization": self.key})
        data: dict[str, Any] = answer.json()
        assert data["result"] == "ok", data
        return data

    async def final(self, request_id: str, within_s: float = 10.0) -> Verification:
        v = await self.gw.await_state(request_id, lambda v: v.final, within_s)
        assert v is not None and v.final, v
        return v

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.gw.db.read() as conn:
            return list(await conn.execute(select(table).where(*where)))


async def _serve(app: Any, sock: socket.socket) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # uvicorn has no started event
        assert not task.done()
        await asyncio.sleep(0.005)
    return server, task


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def stack(db_url: str) -> AsyncIterator[StackFactory]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def _make(sim_token: str = TOKEN, **overrides: Any) -> Stack:
        sim = TelegramGatewaySim(TOKEN, world=World(), report_delay_s=0.02,
                                 report_retry_base_s=0.02)
        sim_url = await sim.start()
        cleanups.append(sim.stop)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = dict(telegram_mode="gateway", telegram_url=sim_url, telegram_token=sim_token,
                        public_url=base, telegram_timeout_s=30.0, telegram_retries=1,
                        callback_allow_private=True)
        settings.update(overrides)
        gw = Gateway(make_settings(db_url, **settings))
        await gw.start()
        server, task = await _serve(create_app(gw, manage_gateway=False), sock)
        http = httpx.AsyncClient(base_url=base, trust_env=False)

        async def _down() -> None:
            await http.aclose()
            server.should_exit = True
            await task
            await gw.stop()

        cleanups.append(_down)
        admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
        await admin.ensure_demo_tariffs()
        key = (await admin.create_account("acme")).api_key
        return Stack(gw, sim, http, base, key)

    yield _make
    for cleanup in reversed(cleanups):
        await cleanup()


def _methods(sim: TelegramGatewaySim) -> list[str]:
    return [c.method for c in sim.calls]


# --------------------------------------------------------------------------- the happy path


async def test_code_goes_through_the_gateway_and_its_signed_report_delivers_it(
        stack: StackFactory) -> None:
    s = await stack()
    sent = await s.send(DELIVERS)
    v = await s.final(sent["request_id"])
    assert v.state is State.DELIVERED and v.delivered_by == "telegram"
    assert _methods(s.sim) == ["checkSendAbility", "sendVerificationMessage"]
    send_call = s.sim.calls[1]
    ability = next(iter(m for m in s.sim.messages.values()))
    assert send_call.params["request_id"] == ability.request_id  # charged once
    assert send_call.params["code"] == sent["code"]  # our code, the one the customer has
    assert send_call.params["callback_url"] == f"{s.base}/webhooks/telegram"
    assert send_call.params["payload"] == sent["request_id"]
    assert 30 <= int(send_call.params["ttl"]) <= 3600
    assert send_call.headers["authorization"] == f"Bearer {TOKEN}"
    # what Telegram charged us, in its own ledger, apart from the customer's price
    costs = await s.rows(provider_costs, provider_costs.c.request_id == sent["request_id"])
    assert [(c.kind, c.amount_micros, c.currency) for c in costs] == [("charge", 10_000, "USD")]


async def test_no_telegram_falls_back_at_once_and_is_remembered(stack: StackFactory) -> None:
    s = await stack()  # the Telegram step would wait 30 s for a report: it must not
    started = time.monotonic()
    first = await s.send(NO_TELEGRAM)
    assert first["resend"] == "sms"
    v = await s.final(first["request_id"], within_s=5.0)
    assert v.state is State.SMS and time.monotonic() - started < 5.0
    assert _methods(s.sim) == ["checkSendAbility"]  # free: no send attempted
    second = await s.send(NO_TELEGRAM)
    await s.final(second["request_id"], within_s=5.0)
    assert _methods(s.sim) == ["checkSendAbility"]  # the negative answer was cached
    tries = await s.rows(attempts, attempts.c.request_id == second["request_id"])
    assert next((a.channel, a.outcome) for a in tries) == ("telegram", "rejected_permanent")


# --------------------------------------------------------------------------- reports


async def test_duplicate_reports_are_applied_once(stack: StackFactory) -> None:
    s = await stack()
    s.sim.set_rule(DELIVERS, NumberRule(final="read", duplicates=2))
    sent = await s.send(DELIVERS)
    await s.final(sent["request_id"])
    await s.sim.settle()
    posted = [r for r in s.sim.reports_sent if r[2] == 200]
    assert len(posted) == 6  # delivered and read, three copies each
    tg = s.gw.telegram
    assert tg is not None
    assert tg.stats["reports"] == 2 and tg.stats["duplicate_reports"] == 4
    stored = await s.rows(reports, reports.c.request_id == sent["request_id"])
    assert sorted(r.detail for r in stored) == ["delivered", "read"]
    assert [r.disposition for r in stored if r.detail == "delivered"] == ["applied"]


async def test_a_lost_report_is_reconciled_before_the_cascade_moves_on(
        stack: StackFactory) -> None:
    s = await stack(telegram_timeout_s=0.5)
    s.sim.set_rule(DELIVERS, NumberRule(lose_reports=True))
    sent = await s.send(DELIVERS)
    v = await s.final(sent["request_id"])
    assert v.state is State.DELIVERED and v.delivered_by == "telegram"  # no SMS sent too
    assert "checkVerificationStatus" in _methods(s.sim)
    tries = await s.rows(attempts, attempts.c.request_id == sent["request_id"])
    assert [a.channel for a in tries] == ["telegram"]


async def test_silent_telegram_times_out_to_sms_after_asking(stack: StackFactory) -> None:
    s = await stack(telegram_timeout_s=0.3)
    sent = await s.send(SILENT)
    v = await s.final(sent["request_id"])
    assert v.state is State.SMS
    assert _methods(s.sim)[-1] == "checkVerificationStatus"


async def test_expired_message_falls_back_and_records_the_refund(stack: StackFactory) -> None:
    s = await stack()
    s.sim.set_rule(DELIVERS, NumberRule(final="expired"))
    sent = await s.send(DELIVERS)
    v = await s.final(sent["request_id"])
    assert v.state is State.SMS
    costs = await s.rows(provider_costs, provider_costs.c.request_id == sent["request_id"])
    assert sorted((c.kind, c.amount_micros) for c in costs) == [("charge", 10_000),
                                                               ("refund", -10_000)]
    rows = await s.gw.channel_status()
    assert rows["telegram"]["healthy"]


def _signed(body: bytes, *, token: str = TOKEN, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {"X-Request-Timestamp": stamp, "X-Request-Signature": sign_report(token, stamp, body),
            "Content-Type": "application/json"}


async def test_webhook_accepts_only_signed_fresh_unchanged_reports(stack: StackFactory) -> None:
    s = await stack()
    s.sim.set_rule(DELIVERS, NumberRule(lose_reports=True, final="silent"))
    sent = await s.send(DELIVERS)
    ref = next(m.request_id for m in s.sim.messages.values() if m.sent)
    body = orjson.dumps({"request_id": ref, "phone_number": "+" + DELIVERS, "request_cost": 0.01,
                         "delivery_status": {"status": "delivered",
                                             "updated_at": int(time.time())}})
    url = "/webhooks/telegram"
    refused = [
        await s.http.post(url, content=body, headers=_signed(body, token="another-token")),
        await s.http.post(url, content=body, headers=_signed(body, ts=int(time.time()) - 3600)),
        await s.http.post(url, content=body + b" ", headers=_signed(body)),
        await s.http.post(url, content=body, headers={"Content-Type": "application/json"}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert [r.json()["error"] for r in refused] == [
        "bad signature", "stale timestamp", "bad signature", "missing headers"]
    v = await s.gw.await_state(sent["request_id"], lambda v: v.final, 0.2)
    assert v is not None and not v.final  # nothing forged reached the cascade
    garbage = b'{"not": "a status"}'
    assert (await s.http.post(url, content=garbage, headers=_signed(garbage))).status_code == 400
    ok = await s.http.post(url, content=body, headers=_signed(body))
    assert ok.status_code == 200 and ok.json() == {"ok": True, "result": "accepted"}
    assert (await s.final(sent["request_id"])).state is State.DELIVERED


# --------------------------------------------------------------------------- errors


async def test_flood_wait_pauses_the_channel_for_every_number(stack: StackFactory) -> None:
    s = await stack()
    s.sim.set_rule(DELIVERS, NumberRule(flood_wait_s=30))
    first = await s.send(DELIVERS)
    assert (await s.final(first["request_id"])).state is State.SMS  # retried, then fallback
    calls = len(s.sim.calls)
    other = await s.send("79001234561")  # Telegram would deliver it, but we must wait
    assert (await s.final(other["request_id"])).state is State.SMS
    assert len(s.sim.calls) == calls  # nobody asked the gateway during the pause
    health = (await s.gw.channel_status())["telegram"]
    assert health["paused"] and health["detail"] == "FLOOD_WAIT_30"
    # a second node (another process) sees the same pause: it is stored
    assert (await s.gw.channel_health.get("telegram")).paused_until_ms > time.time() * 1000


async def test_invalid_token_marks_the_channel_unhealthy_and_codes_fall_back(
        stack: StackFactory) -> None:
    s = await stack(sim_token="revoked-token")
    sent = await s.send(DELIVERS)
    assert (await s.final(sent["request_id"])).state is State.SMS
    health = (await s.http.get("/health")).json()
    assert health["status"] == "ok" and health["degraded"] == ["telegram"]
    assert health["channel_health"]["telegram"]["detail"] == "ACCESS_TOKEN_INVALID"
    metrics = (await s.http.get("/metrics")).text
    assert 'kaskad_channel_healthy{channel="telegram"} 0.0' in metrics
    calls = len(s.sim.calls)
    again = await s.send("79001234561")
    assert (await s.final(again["request_id"])).state is State.SMS
    assert len(s.sim.calls) == calls  # not hammered while unhealthy


async def test_gateway_down_is_retried_then_falls_back(stack: StackFactory) -> None:
    s = await stack()
    await s.sim.stop()  # connection refused from now on
    sent = await s.send(DELIVERS)
    v = await s.final(sent["request_id"])
    assert v.state is State.SMS
    tries = await s.rows(attempts, attempts.c.request_id == sent["request_id"])
    telegram = [a for a in tries if a.channel == "telegram"]
    assert telegram and all(a.outcome == "rejected_temporary" for a in telegram)
    assert "Connect" in telegram[0].detail


# --------------------------------------------------------------------------- the code check


async def test_checked_code_is_passed_on_to_telegram(stack: StackFactory) -> None:
    s = await stack()
    sent = await s.send(DELIVERS)
    await s.final(sent["request_id"])
    wrong = await s.http.post("/api/check/", headers={"Authorization": s.key},
                              json={"request_id": sent["request_id"], "code": "0000"})
    right = await s.http.post("/api/check/", headers={"Authorization": s.key},
                              json={"request_id": sent["request_id"], "code": sent["code"]})
    assert wrong.json()["valid"] is (sent["code"] == "0000")
    assert right.json() == {"result": "ok", "request_id": sent["request_id"], "valid": True}
    deadline = time.monotonic() + 5
    while sum(1 for c in s.sim.calls if c.method == "checkVerificationStatus"
              and "code" in c.params) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    msg = next(m for m in s.sim.messages.values() if m.sent)
    assert msg.code_entered == sent["code"] and msg.verification == "code_valid"


async def test_account_sender_username_is_sent(stack: StackFactory) -> None:
    s = await stack()
    admin = Admin(s.gw.db, test_balance_kop=0, default_directions=["RU"])
    await admin.settings("acme", {"telegram_sender": "acme_codes"})
    sent = await s.send(DELIVERS)
    await s.final(sent["request_id"])
    assert s.sim.calls[-1].params["sender_username"] == "acme_codes"


async def test_margins_report_revenue_against_provider_cost(stack: StackFactory) -> None:
    s = await stack()
    sent = await s.send(DELIVERS)
    await s.final(sent["request_id"])
    admin = Admin(s.gw.db, test_balance_kop=0, default_directions=["RU"])
    rows = {r.channel: r for r in await admin.margins()}
    assert rows["telegram"].delivered == 1 and rows["telegram"].revenue_kop == 150
    assert rows["telegram"].provider_micros == {"USD": 10_000}
    assert ChannelName.TELEGRAM.value in rows


async def test_a_report_that_failed_to_store_is_not_taken_for_a_duplicate() -> None:
    from kaskad.channels.telegram.channel import TelegramChannel
    from kaskad.channels.telegram.client import RequestStatus, TelegramGatewayClient

    class FlakySink:
        def __init__(self) -> None:
            self.calls = 0

        async def report(self, *args: Any, **kwargs: Any) -> None:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("database unavailable")

    sink = FlakySink()
    client = TelegramGatewayClient(TOKEN)
    channel = TelegramChannel(client, sink, health=None, clock=time.time)  # type: ignore[arg-type]
    status = RequestStatus("r1", "+" + DELIVERS, 10_000, delivery_status="delivered",
                           delivery_updated_at=1)
    with pytest.raises(ConnectionError):
        await channel.handle_report(status)  # the webhook answers 503; Telegram retries
    assert await channel.handle_report(status) == "accepted"
    assert await channel.handle_report(status) == "duplicate"
    await client.close()
