"""The Telegram Gateway client against the simulator over loopback: the four methods, limits
checked before sending, error classification, bounded retries and the proxy setting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import httpx
import pytest
from aiohttp import web

from kaskad.channels.telegram.client import (
    GatewayError,
    GatewayUnavailable,
    ParamError,
    TelegramGatewayClient,
)
from kaskad.domain.telegram import ErrorKind
from kaskad.simulators.telegram_gateway import NumberRule, TelegramGatewaySim
from tests.helpers import serve_aiohttp

TOKEN = "client-test-token"
PHONE = "79001234560"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[TelegramGatewaySim, str]]:
    s = TelegramGatewaySim(TOKEN, report_delay_s=0.01, cost_usd=Decimal("0.013"))
    url = await s.start()
    yield s, url
    await s.stop()


@pytest.fixture
async def client(sim: tuple[TelegramGatewaySim, str]) -> AsyncIterator[TelegramGatewayClient]:
    c = TelegramGatewayClient(TOKEN, base_url=sim[1], retries=1, retry_backoff_s=0.01)
    yield c
    await c.close()


async def test_check_then_send_reuses_the_request_id(sim: tuple[TelegramGatewaySim, str],
                                                     client: TelegramGatewayClient) -> None:
    ability = await client.check_send_ability(PHONE)
    assert ability.phone_number == "+" + PHONE and ability.cost_micros == 13_000
    sent = await client.send_verification_message(PHONE, code="123456",
                                                  request_id=ability.request_id,
                                                  payload="ours", ttl=60)
    assert sent.request_id == ability.request_id and sent.delivery_status == "sent"
    assert sent.payload == "ours"
    with pytest.raises(GatewayError) as again:  # a prepaid request is used once
        await client.send_verification_message(PHONE, code="123456",
                                               request_id=ability.request_id)
    assert again.value.kind.kind is ErrorKind.BAD_REQUEST


async def test_status_with_code_and_revoke(sim: tuple[TelegramGatewaySim, str],
                                           client: TelegramGatewayClient) -> None:
    sim[0].set_rule(PHONE, NumberRule(final="silent"))
    sent = await client.send_verification_message(PHONE, code="4321")
    checked = await client.check_verification_status(sent.request_id, "4321")
    assert checked.verification_status == "code_valid" and checked.code_entered == "4321"
    assert checked.delivery_status == "sent"
    assert await client.revoke_verification_message(sent.request_id) is True
    assert (await client.check_verification_status(sent.request_id)).delivery_status == "revoked"


async def test_telegram_generated_code_length(client: TelegramGatewayClient,
                                              sim: tuple[TelegramGatewaySim, str]) -> None:
    sent = await client.send_verification_message(PHONE, code_length=7)
    assert len(sim[0].messages[sent.request_id].code or "") == 7


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"code": "123"}, "code"),
    ({"code": "123456789"}, "code"),
    ({"code": "12a4"}, "code"),
    ({"code_length": 9}, "code_length"),
    ({"ttl": 29}, "ttl"),
    ({"ttl": 3601}, "ttl"),
    ({"payload": "я" * 65}, "payload"),  # 130 bytes
    ({"callback_url": "https://example.com/" + "a" * 237}, "callback_url"),  # 257 bytes
    ({"sender_username": "no spaces"}, "sender_username"),
])
async def test_limits_are_enforced_before_sending(client: TelegramGatewayClient,
                                                  sim: tuple[TelegramGatewaySim, str],
                                                  kwargs: dict[str, object],
                                                  problem: str) -> None:
    with pytest.raises(ParamError, match=problem):
        await client.send_verification_message(PHONE, **kwargs)  # type: ignore[arg-type]
    assert sim[0].calls == []


async def test_limits_at_their_edges_are_accepted(client: TelegramGatewayClient) -> None:
    sent = await client.send_verification_message(
        PHONE, code="12345678", ttl=3600, payload="я" * 64,
        callback_url="https://example.com/" + "a" * 236, sender_username="kaskad")
    assert sent.request_id


async def test_no_telegram_and_bad_token_are_classified(sim: tuple[TelegramGatewaySim, str],
                                                        client: TelegramGatewayClient) -> None:
    sim[0].set_rule(PHONE, NumberRule(telegram=False))
    with pytest.raises(GatewayError) as none:
        await client.check_send_ability(PHONE)
    assert none.value.kind.kind is ErrorKind.NO_TELEGRAM
    bad = TelegramGatewayClient("wrong", base_url=sim[1])
    try:
        with pytest.raises(GatewayError) as token:
            await bad.check_send_ability(PHONE)
    finally:
        await bad.close()
    assert token.value.error == "ACCESS_TOKEN_INVALID"
    assert token.value.kind.kind is ErrorKind.CONFIG


async def test_flood_wait_carries_its_seconds(sim: tuple[TelegramGatewaySim, str],
                                              client: TelegramGatewayClient) -> None:
    sim[0].set_rule(PHONE, NumberRule(flood_wait_s=42))
    with pytest.raises(GatewayError) as flood:
        await client.send_verification_message(PHONE, code="1234")
    assert flood.value.kind.kind is ErrorKind.FLOOD and flood.value.kind.wait_s == 42


Handler = Callable[[web.Request], Awaitable[web.Response]]


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A stand-in gateway over loopback that answers what a test tells it to (aiohttp.web)."""
    runners: list[web.AppRunner] = []

    async def _start(handler: Handler) -> str:
        runner, port = await serve_aiohttp("/{method}", handler)
        runners.append(runner)
        return f"http://127.0.0.1:{port}/"

    yield _start
    for runner in runners:
        await runner.cleanup()


async def test_unknown_error_strings_are_classified_not_crashed(
        peer: Callable[[Handler], Awaitable[str]]) -> None:
    async def gateway(_: web.Request) -> web.Response:  # a gateway with a new error string
        return web.json_response({"ok": False, "error": "SOMETHING_NEW_2027"})

    c = TelegramGatewayClient(TOKEN, base_url=await peer(gateway))
    try:
        with pytest.raises(GatewayError) as exc:
            await c.check_send_ability(PHONE)
    finally:
        await c.close()
    assert exc.value.kind.kind is ErrorKind.UNKNOWN


async def test_an_answer_that_is_not_the_envelope_is_unavailable(
        peer: Callable[[Handler], Awaitable[str]]) -> None:
    async def gateway(_: web.Request) -> web.Response:
        return web.Response(body=b"<html>captive portal</html>", content_type="text/html")

    c = TelegramGatewayClient(TOKEN, base_url=await peer(gateway), retries=0)
    try:
        with pytest.raises(GatewayUnavailable, match="envelope"):
            await c.check_send_ability(PHONE)
    finally:
        await c.close()


async def test_5xx_is_retried_a_bounded_number_of_times(
        peer: Callable[[Handler], Awaitable[str]]) -> None:
    seen: list[int] = []

    async def flaky(_: web.Request) -> web.Response:
        seen.append(1)
        if len(seen) < 3:
            return web.Response(status=502, text="bad gateway")
        return web.json_response({"ok": True, "result": {
            "request_id": "r1", "phone_number": "+" + PHONE, "request_cost": 0.01}})

    c = TelegramGatewayClient(TOKEN, base_url=await peer(flaky), retries=2,
                              retry_backoff_s=0.001)
    try:
        assert (await c.check_send_ability(PHONE)).request_id == "r1"
        seen.clear()
        c.retries = 1
        with pytest.raises(GatewayUnavailable, match="HTTP 502"):
            await c.check_send_ability(PHONE)
    finally:
        await c.close()
    assert len(seen) == 2  # one try and one retry, then it gives up


async def test_network_errors_give_up_after_retries() -> None:
    c = TelegramGatewayClient(TOKEN, base_url="http://127.0.0.1:9/", retries=2,
                              retry_backoff_s=0.001, timeout_s=1)
    try:
        with pytest.raises(GatewayUnavailable, match="Connect"):
            await c.check_send_ability(PHONE)
    finally:
        await c.close()


class ForwardProxy:
    """A minimal HTTP forward proxy (absolute-form requests), recording what passes."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.server: asyncio.Server | None = None
        self._http = httpx.AsyncClient(trust_env=False)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._one, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, url, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append(f"{method} {url}")
                for hop in ("proxy-connection", "connection", "host", "content-length"):
                    headers.pop(hop, None)
                answer = await self._http.request(method, url, headers=headers, content=body)
                writer.write(b"HTTP/1.1 %d OK\r\nContent-Length: %d\r\n\r\n%s" % (
                    answer.status_code, len(answer.content), answer.content))
                await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        await self._http.aclose()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_the_proxy_setting_is_honoured(sim: tuple[TelegramGatewaySim, str]) -> None:
    proxy = ForwardProxy()
    proxy_url = await proxy.start()
    c = TelegramGatewayClient(TOKEN, base_url=sim[1], proxy=proxy_url)
    try:
        assert (await c.check_send_ability(PHONE)).request_id
    finally:
        await c.close()
        await proxy.stop()
    assert proxy.seen == [f"POST {sim[1]}checkSendAbility"]
    assert [c.method for c in sim[0].calls] == ["checkSendAbility"]
