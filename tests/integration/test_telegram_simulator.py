"""The Telegram Gateway simulator, spoken to over loopback with plain httpx.

The simulator stands in for gatewayapi.telegram.org in every Telegram channel test, so its wire
behaviour (envelopes, auth, money, signed reports with retries) is pinned here on its own: a bug
in it would otherwise pass for a bug, or a feature, of the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kaskad.domain.telegram import ReportCheck, check_report
from kaskad.simulators.telegram_gateway import (
    NumberRule,
    TelegramGatewaySim,
    rule_from_world,
)
from kaskad.simulators.world import World

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+79991234560"
OTHER_PHONE = "+79991234561"
WAIT_S = 5.0


# --------------------------------------------------------------------------- helpers


async def eventually(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll a condition instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers, so pytest keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Receiver:
    """A callback_url endpoint: records every report and answers the statuses queued."""

    statuses: list[int] = field(default_factory=list)  # consumed first; then 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        headers = {key.lower(): value for key, value in request.headers.items()}
        self.received.append((headers, await request.body()))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = Starlette(routes=[Route("/reports", recv.endpoint, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            log_config=None, lifespan="off", ws="none")
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    recv.url = f"http://127.0.0.1:{port}/reports"
    yield recv
    server.should_exit = True
    await task


@pytest.fixture
async def running() -> AsyncIterator[tuple[TelegramGatewaySim, str]]:
    """A started simulator with tiny delays, and its base URL."""
    simulator = TelegramGatewaySim(TOKEN, report_delay_s=0.01, report_retry_base_s=0.001)
    base_url = await simulator.start()
    yield simulator, base_url
    await simulator.stop()


@pytest.fixture
def sim(running: tuple[TelegramGatewaySim, str]) -> TelegramGatewaySim:
    return running[0]


@pytest.fixture
async def client(running: tuple[TelegramGatewaySim, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running[1], trust_env=False) as http:
        yield http


Call = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def call(client: httpx.AsyncClient) -> Call:
    """POST a method with JSON parameters and the bearer token; the decoded envelope."""

    async def _call(method: str, headers: dict[str, str] | None = None,
                    **params: Any) -> dict[str, Any]:
        response = await client.post(method, json=params,
                                     headers=AUTH if headers is None else headers)
        assert response.status_code == 200
        envelope: dict[str, Any] = response.json()
        return envelope

    return _call


def error_of(envelope: dict[str, Any]) -> str:
    assert envelope["ok"] is False, envelope
    assert set(envelope) == {"ok", "error"}
    error: str = envelope["error"]
    return error


def result_of(envelope: dict[str, Any]) -> Any:
    assert envelope["ok"] is True, envelope
    return envelope["result"]


# --------------------------------------------------------------------------- transport


async def test_get_post_form_and_json_are_the_same_call(
        sim: TelegramGatewaySim, client: httpx.AsyncClient) -> None:
    params = {"phone_number": PHONE, "code": "1234"}
    responses = [
        await client.get("sendVerificationMessage", params=params, headers=AUTH),
        await client.post("sendVerificationMessage", data=params, headers=AUTH),
        await client.post("sendVerificationMessage", json=params, headers=AUTH),
        await client.post("sendVerificationMessage", params=params, headers=AUTH),
    ]
    for response in responses:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert result_of(response.json())["delivery_status"]["status"] == "sent"
    assert [c.http_method for c in sim.calls] == ["GET", "POST", "POST", "POST"]
    assert all(c.params["phone_number"] == PHONE for c in sim.calls)
    assert all(c.method == "sendVerificationMessage" for c in sim.calls)
    assert {m.code for m in sim.messages.values()} == {"1234"}


async def test_body_parameters_override_the_query_string(
        sim: TelegramGatewaySim, client: httpx.AsyncClient) -> None:
    response = await client.post("checkSendAbility", params={"phone_number": "garbage"},
                                 json={"phone_number": PHONE}, headers=AUTH)
    assert result_of(response.json())["phone_number"] == PHONE


@pytest.mark.parametrize("path", ["checksendability", "CHECKSENDABILITY", "checkSendAbility",
                                  "CheckSendAbility/"])
async def test_method_names_are_case_insensitive(
        sim: TelegramGatewaySim, call: Call, path: str) -> None:
    assert result_of(await call(path, phone_number=PHONE))["phone_number"] == PHONE
    assert sim.calls[-1].method == "checkSendAbility"


@pytest.mark.parametrize("path", ["sendMessage", "", "gw/sendVerificationMessage", "getMe"])
async def test_unknown_method(sim: TelegramGatewaySim, call: Call, path: str) -> None:
    assert error_of(await call(path, phone_number=PHONE)) == "UNKNOWN_METHOD"
    assert sim.messages == {}


# --------------------------------------------------------------------------- auth


async def test_token_required(sim: TelegramGatewaySim, call: Call) -> None:
    assert error_of(await call("checkSendAbility", headers={},
                               phone_number=PHONE)) == "ACCESS_TOKEN_REQUIRED"
    assert sim.balance_usd == Decimal("100")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer nope"},
                                     {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": f"Bearer {TOKEN}x"}])
async def test_token_invalid(sim: TelegramGatewaySim, call: Call,
                             headers: dict[str, str]) -> None:
    assert error_of(await call("checkSendAbility", headers=headers,
                               phone_number=PHONE)) == "ACCESS_TOKEN_INVALID"
    assert sim.messages == {}


async def test_access_token_parameter(client: httpx.AsyncClient, call: Call) -> None:
    by_query = await client.get("checkSendAbility",
                                params={"phone_number": PHONE, "access_token": TOKEN})
    assert result_of(by_query.json())["phone_number"] == PHONE
    by_form = await client.post("checkSendAbility",
                                data={"phone_number": PHONE, "access_token": TOKEN})
    assert result_of(by_form.json())["phone_number"] == PHONE
    assert result_of(await call("checkSendAbility", headers={}, phone_number=PHONE,
                                access_token=TOKEN))["phone_number"] == PHONE
    assert error_of(await call("checkSendAbility", headers={}, phone_number=PHONE,
                               access_token="wrong")) == "ACCESS_TOKEN_INVALID"


async def test_bearer_scheme_is_case_insensitive(call: Call) -> None:
    envelope = await call("checkSendAbility", headers={"Authorization": f"bearer {TOKEN}"},
                          phone_number=PHONE)
    assert result_of(envelope)["phone_number"] == PHONE


async def test_changed_token_invalidates_the_old_one(sim: TelegramGatewaySim, call: Call) -> None:
    sim.token = "rotated"
    assert error_of(await call("checkSendAbility", phone_number=PHONE)) == "ACCESS_TOKEN_INVALID"
    envelope = await call("checkSendAbility", headers={"Authorization": "Bearer rotated"},
                          phone_number=PHONE)
    assert result_of(envelope)["phone_number"] == PHONE


async def test_calls_record_headers(sim: TelegramGatewaySim, call: Call) -> None:
    await call("checkSendAbility", phone_number=PHONE)
    assert sim.calls[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert sim.calls[-1].params == {"phone_number": PHONE}


# --------------------------------------------------------------------------- checkSendAbility


async def test_check_send_ability_charges_in_advance(sim: TelegramGatewaySim, call: Call) -> None:
    result = result_of(await call("checkSendAbility", phone_number=PHONE))
    assert result["phone_number"] == PHONE
    assert result["request_cost"] == pytest.approx(0.01)
    assert result["remaining_balance"] == pytest.approx(99.99)
    assert "delivery_status" not in result and "is_refunded" not in result
    assert sim.balance_usd == Decimal("99.99")
    message = sim.messages[result["request_id"]]
    assert message.prepaid and not message.sent and message.status is None


async def test_check_send_ability_without_telegram_is_free(
        sim: TelegramGatewaySim, call: Call) -> None:
    sim.set_rule(PHONE, NumberRule(telegram=False))
    assert error_of(await call("checkSendAbility", phone_number=PHONE)) == "PHONE_NUMBER_NOT_FOUND"
    assert error_of(await call("sendVerificationMessage",
                               phone_number=PHONE)) == "PHONE_NUMBER_NOT_FOUND"
    assert sim.balance_usd == Decimal("100") and sim.messages == {}


@pytest.mark.parametrize("phone", ["", "abc", "+0123456789", "123", "+7999123456789012",
                                   "+7 999 123 45 60", "٧٩٩٩١٢٣٤٥٦٠"])
async def test_check_send_ability_phone_invalid(call: Call, phone: str) -> None:
    assert error_of(await call("checkSendAbility", phone_number=phone)) == "PHONE_NUMBER_INVALID"


async def test_phone_without_plus_is_accepted(call: Call) -> None:
    assert result_of(await call("checkSendAbility",
                                phone_number=PHONE[1:]))["phone_number"] == PHONE


async def test_balance_not_enough(call: Call) -> None:
    sim = TelegramGatewaySim(TOKEN, balance_usd=Decimal("0.015"))
    base_url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
            first = await http.post("checkSendAbility", json={"phone_number": PHONE},
                                    headers=AUTH)
            assert result_of(first.json())["remaining_balance"] == pytest.approx(0.005)
            for method in ("checkSendAbility", "sendVerificationMessage"):
                second = await http.post(method, json={"phone_number": PHONE}, headers=AUTH)
                assert error_of(second.json()) == "BALANCE_NOT_ENOUGH"
        assert sim.balance_usd == Decimal("0.005") and len(sim.messages) == 1
    finally:
        await sim.stop()


# --------------------------------------------------------------------------- send


async def test_send_success(sim: TelegramGatewaySim, call: Call, receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(final="silent"))
    result = result_of(await call("sendVerificationMessage", phone_number=PHONE, code="123456",
                                  ttl=60, payload="order-7", callback_url=receiver.url,
                                  sender_username="kaskad_bot"))
    assert result["phone_number"] == PHONE
    assert result["request_cost"] == pytest.approx(0.01)
    assert result["remaining_balance"] == pytest.approx(99.99)
    assert result["delivery_status"]["status"] == "sent"
    assert abs(result["delivery_status"]["updated_at"] - time.time()) < 5
    assert result["payload"] == "order-7"
    assert "verification_status" not in result
    message = sim.messages[result["request_id"]]
    assert (message.code, message.ttl, message.payload, message.callback_url) == (
        "123456", 60, "order-7", receiver.url)
    assert message.sender_username == "kaskad_bot"
    await sim.settle()
    assert receiver.received == []  # "sent" itself is never reported


@pytest.mark.parametrize(("length", "expected"), [(4, 4), (8, 8), ("5", 5), (None, 6)])
async def test_generated_code_length(sim: TelegramGatewaySim, call: Call,
                                     length: int | str | None, expected: int) -> None:
    params: dict[str, Any] = {"phone_number": PHONE}
    if length is not None:
        params["code_length"] = length
    result = result_of(await call("sendVerificationMessage", **params))
    code = sim.messages[result["request_id"]].code
    assert code is not None and code.isdigit() and len(code) == expected


@pytest.mark.parametrize(("params", "error"), [
    ({"phone_number": "12"}, "PHONE_NUMBER_INVALID"),
    ({"phone_number": ["+79991234560"]}, "PHONE_NUMBER_INVALID"),
    ({"phone_number": True}, "PHONE_NUMBER_INVALID"),
    ({"phone_number": None}, "PHONE_NUMBER_INVALID"),
    ({"code": "123"}, "CODE_INVALID"),
    ({"code": "123456789"}, "CODE_INVALID"),
    ({"code": "12ab"}, "CODE_INVALID"),
    ({"code": 12.5}, "CODE_INVALID"),
    ({"code_length": 3}, "CODE_LENGTH_INVALID"),
    ({"code_length": 9}, "CODE_LENGTH_INVALID"),
    ({"code_length": "six"}, "CODE_LENGTH_INVALID"),
    ({"code_length": "+-5"}, "CODE_LENGTH_INVALID"),
    ({"ttl": 29}, "TTL_INVALID"),
    ({"ttl": 3601}, "TTL_INVALID"),
    ({"ttl": "10" * 30}, "TTL_INVALID"),
    ({"ttl": 10**40}, "TTL_INVALID"),
    ({"payload": "x" * 129}, "PAYLOAD_INVALID"),
    ({"payload": "я" * 65}, "PAYLOAD_INVALID"),
    ({"payload": {"a": 1}}, "PAYLOAD_INVALID"),
    ({"callback_url": "ftp://example.com/r"}, "CALLBACK_URL_INVALID"),
    ({"callback_url": "https://example.com/" + "a" * 240}, "CALLBACK_URL_INVALID"),
    ({"callback_url": "not a url"}, "CALLBACK_URL_INVALID"),
    ({"callback_url": "http://[::1/x"}, "CALLBACK_URL_INVALID"),
    ({"sender_username": "abc"}, "SENDER_USERNAME_INVALID"),
    ({"sender_username": "bad-name"}, "SENDER_USERNAME_INVALID"),
    ({"sender_username": "x" * 33}, "SENDER_USERNAME_INVALID"),
    ({"request_id": "unknown"}, "REQUEST_ID_INVALID"),
])
async def test_send_errors_cost_nothing(sim: TelegramGatewaySim, call: Call,
                                        params: dict[str, Any], error: str) -> None:
    merged: dict[str, Any] = {"phone_number": PHONE, **params}
    assert error_of(await call("sendVerificationMessage", **merged)) == error
    assert sim.balance_usd == Decimal("100") and sim.messages == {}


async def test_limits_are_inclusive(call: Call, receiver: Receiver) -> None:
    longest_url = receiver.url + "?pad=" + "a" * (256 - len(receiver.url) - 5)
    assert len(longest_url.encode()) == 256
    envelope = await call("sendVerificationMessage", phone_number=PHONE, code="12345678", ttl=30,
                          payload="x" * 128, callback_url=longest_url, sender_username="a" * 32)
    assert result_of(envelope)["payload"] == "x" * 128
    envelope = await call("sendVerificationMessage", phone_number=PHONE, code="1234", ttl="3600")
    assert result_of(envelope)["delivery_status"]["status"] == "sent"


# --------------------------------------------------------------------------- prepaid requests


async def test_prepaid_request_id_is_free_and_used_once(
        sim: TelegramGatewaySim, call: Call) -> None:
    request_id = result_of(await call("checkSendAbility", phone_number=PHONE))["request_id"]
    result = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                  request_id=request_id, code="4321"))
    assert result["request_id"] == request_id
    assert result["remaining_balance"] == pytest.approx(99.99)
    assert sim.balance_usd == Decimal("99.99")
    assert sim.messages[request_id].sent and sim.messages[request_id].code == "4321"
    again = await call("sendVerificationMessage", phone_number=PHONE, request_id=request_id)
    assert error_of(again) == "REQUEST_ID_INVALID"
    assert sim.balance_usd == Decimal("99.99") and len(sim.messages) == 1


async def test_prepaid_request_id_belongs_to_its_number(
        sim: TelegramGatewaySim, call: Call) -> None:
    request_id = result_of(await call("checkSendAbility", phone_number=PHONE))["request_id"]
    other = await call("sendVerificationMessage", phone_number=OTHER_PHONE, request_id=request_id)
    assert error_of(other) == "REQUEST_ID_INVALID"
    sent_id = result_of(await call("sendVerificationMessage", phone_number=PHONE))["request_id"]
    reuse = await call("sendVerificationMessage", phone_number=PHONE, request_id=sent_id)
    assert error_of(reuse) == "REQUEST_ID_INVALID"
    assert sim.balance_usd == Decimal("99.98")


# --------------------------------------------------------------------------- reports


def assert_signed(headers: dict[str, str], body: bytes, token: str = TOKEN) -> None:
    assert headers["content-type"] == "application/json"
    check = check_report(token, headers.get("x-request-timestamp"),
                         headers.get("x-request-signature"), body, now_s=time.time())
    assert check is ReportCheck.OK


async def test_delivered_report_is_signed(sim: TelegramGatewaySim, call: Call,
                                          receiver: Receiver) -> None:
    result = result_of(await call("sendVerificationMessage", phone_number=PHONE, code="1234",
                                  payload="p", callback_url=receiver.url))
    await sim.settle()
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert_signed(headers, body)
    report = json.loads(body)
    assert report["request_id"] == result["request_id"]
    assert report["phone_number"] == PHONE
    assert report["delivery_status"]["status"] == "delivered"
    assert report["payload"] == "p"
    assert report["request_cost"] == pytest.approx(0.01)
    assert check_report("other-token", headers["x-request-timestamp"],
                        headers["x-request-signature"], body,
                        now_s=time.time()) is ReportCheck.BAD_SIGNATURE
    assert sim.reports_sent == [(receiver.url, body, 200)]


async def test_read_reports_delivered_then_read(sim: TelegramGatewaySim, call: Call,
                                                receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(final="read", report_delay_s=0.005))
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      callback_url=receiver.url))["request_id"]
    await eventually(lambda: len(receiver.received) == 2)
    statuses = [json.loads(body)["delivery_status"]["status"] for _, body in receiver.received]
    assert statuses == ["delivered", "read"]
    for headers, body in receiver.received:
        assert_signed(headers, body)
    status = result_of(await call("checkVerificationStatus", request_id=request_id))
    assert status["delivery_status"]["status"] == "read"


async def test_duplicates_are_identical(sim: TelegramGatewaySim, call: Call,
                                        receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(duplicates=2))
    await call("sendVerificationMessage", phone_number=PHONE, callback_url=receiver.url)
    await sim.settle()
    assert len(receiver.received) == 3
    first_headers, first_body = receiver.received[0]
    for headers, body in receiver.received:
        assert body == first_body
        assert headers["x-request-timestamp"] == first_headers["x-request-timestamp"]
        assert headers["x-request-signature"] == first_headers["x-request-signature"]
        assert_signed(headers, body)


async def test_lost_reports_still_change_the_status(sim: TelegramGatewaySim, call: Call,
                                                    receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(lose_reports=True))
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      callback_url=receiver.url))["request_id"]
    await sim.settle()
    assert receiver.received == [] and sim.reports_sent == []
    status = result_of(await call("checkVerificationStatus", request_id=request_id))
    assert status["delivery_status"]["status"] == "delivered"


async def test_expired_is_refunded(sim: TelegramGatewaySim, call: Call,
                                   receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(final="expired"))
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE, ttl=30,
                                      callback_url=receiver.url))["request_id"]
    assert sim.balance_usd == Decimal("99.99")
    await sim.settle()
    assert sim.balance_usd == Decimal("100")
    report = json.loads(receiver.received[0][1])
    assert report["delivery_status"]["status"] == "expired"
    assert report["is_refunded"] is True
    assert report["remaining_balance"] == pytest.approx(100)
    status = result_of(await call("checkVerificationStatus", request_id=request_id))
    assert status["is_refunded"] is True and sim.messages[request_id].refunded


async def test_silent_stays_sent(sim: TelegramGatewaySim, call: Call, receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(final="silent"))
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      callback_url=receiver.url))["request_id"]
    await sim.settle()
    assert sim.messages[request_id].status == "sent" and receiver.received == []


async def test_reports_are_retried_until_200(sim: TelegramGatewaySim, call: Call,
                                             receiver: Receiver) -> None:
    receiver.statuses = [500, 404]
    await call("sendVerificationMessage", phone_number=PHONE, callback_url=receiver.url)
    await sim.settle()
    assert [status for _, _, status in sim.reports_sent] == [500, 404, 200]
    assert len({body for _, body in receiver.received}) == 1
    for headers, body in receiver.received:
        assert_signed(headers, body)


async def test_reports_are_dropped_after_ten_attempts(sim: TelegramGatewaySim, call: Call,
                                                      receiver: Receiver) -> None:
    receiver.statuses = [503] * 20
    await call("sendVerificationMessage", phone_number=PHONE, callback_url=receiver.url)
    await sim.settle()
    assert [status for _, _, status in sim.reports_sent] == [503] * 10
    assert len(receiver.received) == 10


async def test_unreachable_receiver_is_retried(sim: TelegramGatewaySim, call: Call) -> None:
    closed = await _closed_port_url()
    await call("sendVerificationMessage", phone_number=PHONE, callback_url=closed)
    await sim.settle()
    assert [(url, status) for url, _, status in sim.reports_sent] == [(closed, 0)] * 10


async def _closed_port_url() -> str:
    """A loopback URL nobody listens on: bind port 0, note it, close it."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"http://127.0.0.1:{port}/reports"


# --------------------------------------------------------------------------- verification


async def test_check_verification_status_codes(sim: TelegramGatewaySim, call: Call) -> None:
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      code="2468"))["request_id"]
    await sim.settle()
    plain = result_of(await call("checkVerificationStatus", request_id=request_id))
    assert plain["delivery_status"]["status"] == "delivered"
    assert "verification_status" not in plain
    wrong = result_of(await call("checkVerificationStatus", request_id=request_id, code="1111"))
    assert wrong["verification_status"]["status"] == "code_invalid"
    assert wrong["verification_status"]["code_entered"] == "1111"
    right = result_of(await call("checkVerificationStatus", request_id=request_id, code="2468"))
    assert right["verification_status"]["status"] == "code_valid"
    assert right["verification_status"]["code_entered"] == "2468"
    assert isinstance(right["verification_status"]["updated_at"], int)
    assert sim.messages[request_id].code_attempts == 1


async def test_three_wrong_codes_exceed_attempts(sim: TelegramGatewaySim, call: Call) -> None:
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      code_length=4))["request_id"]
    code = sim.messages[request_id].code
    wrong = "0000" if code != "0000" else "1111"
    verdicts = []
    for _ in range(3):
        envelope = await call("checkVerificationStatus", request_id=request_id, code=wrong)
        verdicts.append(result_of(envelope)["verification_status"]["status"])
    assert verdicts == ["code_invalid", "code_invalid", "code_max_attempts_exceeded"]
    late = await call("checkVerificationStatus", request_id=request_id, code=code)
    assert result_of(late)["verification_status"]["status"] == "code_max_attempts_exceeded"


async def test_code_expires_with_its_ttl() -> None:
    now = [1_700_000_000.0]
    sim = TelegramGatewaySim(TOKEN, report_delay_s=0.01, clock=lambda: now[0])
    base_url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
            sent = await http.post("sendVerificationMessage", headers=AUTH,
                                   json={"phone_number": PHONE, "code": "1234", "ttl": 30})
            request_id = result_of(sent.json())["request_id"]
            assert result_of(sent.json())["delivery_status"]["updated_at"] == 1_700_000_000
            now[0] += 31
            checked = await http.post("checkVerificationStatus", headers=AUTH,
                                      json={"request_id": request_id, "code": "1234"})
            verification = result_of(checked.json())["verification_status"]
            assert verification == {"status": "expired", "updated_at": 1_700_000_031,
                                    "code_entered": "1234"}
    finally:
        await sim.stop()


@pytest.mark.parametrize(("params", "error"), [
    ({"request_id": "nope"}, "REQUEST_ID_INVALID"),
    ({}, "REQUEST_ID_INVALID"),
    ({"request_id": ["x"]}, "REQUEST_ID_INVALID"),
    ({"request_id": None}, "REQUEST_ID_INVALID"),
])
async def test_unknown_request_id(call: Call, params: dict[str, Any], error: str) -> None:
    assert error_of(await call("checkVerificationStatus", **params)) == error
    assert error_of(await call("revokeVerificationMessage", **params)) == error


async def test_check_with_a_malformed_code(call: Call) -> None:
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE))["request_id"]
    envelope = await call("checkVerificationStatus", request_id=request_id, code="12x4")
    assert error_of(envelope) == "CODE_INVALID"


# --------------------------------------------------------------------------- revoke


async def test_revoke_pending_message(sim: TelegramGatewaySim, call: Call,
                                      receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(report_delay_s=60))
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      callback_url=receiver.url))["request_id"]
    assert result_of(await call("revokeVerificationMessage", request_id=request_id)) is True
    await sim.settle()  # the pending delivery was cancelled: nothing waits 60 s
    assert sim.messages[request_id].status == "revoked"
    assert [json.loads(body)["delivery_status"]["status"]
            for _, body in receiver.received] == ["revoked"]
    assert sim.balance_usd == Decimal("99.99")  # no refund
    status = result_of(await call("checkVerificationStatus", request_id=request_id))
    assert status["delivery_status"]["status"] == "revoked"
    assert "is_refunded" not in status


async def test_revoke_after_delivery_changes_nothing(sim: TelegramGatewaySim, call: Call,
                                                     receiver: Receiver) -> None:
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      callback_url=receiver.url))["request_id"]
    await sim.settle()
    assert result_of(await call("revokeVerificationMessage", request_id=request_id)) is True
    await sim.settle()
    assert sim.messages[request_id].status == "delivered"
    assert len(receiver.received) == 1


# --------------------------------------------------------------------------- flood and world


async def test_flood_wait_on_every_method(sim: TelegramGatewaySim, call: Call) -> None:
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE))["request_id"]
    sim.set_rule(PHONE[1:], NumberRule(flood_wait_s=5))
    assert error_of(await call("checkSendAbility", phone_number=PHONE)) == "FLOOD_WAIT_5"
    assert error_of(await call("sendVerificationMessage", phone_number=PHONE)) == "FLOOD_WAIT_5"
    for method in ("checkVerificationStatus", "revokeVerificationMessage"):
        assert error_of(await call(method, request_id=request_id)) == "FLOOD_WAIT_5"
    assert result_of(await call("checkSendAbility", phone_number=OTHER_PHONE))


def test_rule_from_world() -> None:
    world = World()
    assert rule_from_world(world, "79990000000") == NumberRule()
    assert rule_from_world(world, "+79990000003") == NumberRule(final="silent")
    assert rule_from_world(world, "79990000004") == NumberRule(telegram=False)
    assert rule_from_world(world, "79990000006") == NumberRule(final="expired")
    assert rule_from_world(world, "79990000007") == NumberRule(flood_wait_s=1)
    overridden = World({"0": {"telegram": "absent"}})
    assert rule_from_world(overridden, "79990000000") == NumberRule(telegram=False)


async def test_world_drives_numbers_and_rules_override_it() -> None:
    sim = TelegramGatewaySim(TOKEN, world=World(), report_delay_s=0.01)
    base_url = await sim.start()
    try:
        async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
            async def send(phone: str) -> dict[str, Any]:
                response = await http.post("sendVerificationMessage", headers=AUTH,
                                           json={"phone_number": phone})
                envelope: dict[str, Any] = response.json()
                return envelope

            assert error_of(await send("+79990000004")) == "PHONE_NUMBER_NOT_FOUND"
            assert error_of(await send("+79990000007")) == "FLOOD_WAIT_1"
            silent = result_of(await send("+79990000003"))["request_id"]
            delivered = result_of(await send("+79990000001"))["request_id"]
            sim.set_rule("79990000004", NumberRule())
            assert sim.rule("+79990000004") == NumberRule()
            assert result_of(await send("+79990000004"))["phone_number"] == "+79990000004"
        await sim.settle()
        assert sim.messages[silent].status == "sent"
        assert sim.messages[delivered].status == "delivered"
    finally:
        await sim.stop()


def test_set_rule_rejects_unknown_final() -> None:
    sim = TelegramGatewaySim(TOKEN)
    with pytest.raises(ValueError, match="final"):
        sim.set_rule(PHONE, NumberRule(final="bounced"))


# --------------------------------------------------------------------------- garbage


@pytest.mark.parametrize(("content", "content_type", "error"), [
    (b"{not json", "application/json", "INVALID_JSON"),
    (b"[1, 2]", "application/json", "INVALID_JSON"),
    (b"\"text\"", "application/json", "INVALID_JSON"),
    (b"\xff\xfe", "application/json", "INVALID_JSON"),
    (b"[" * 100_00 + b"]" * 100_00, "application/json", "INVALID_JSON"),
    (b"1" * 5000, "application/json", "INVALID_JSON"),
    (b"phone_number=%ff%fe\xff", "application/x-www-form-urlencoded", "INVALID_ENCODING"),
    (b"x" * (70 * 1024), "application/x-www-form-urlencoded", "REQUEST_TOO_LARGE"),
    (b"phone_number=1&&&===", "application/x-www-form-urlencoded", "PHONE_NUMBER_INVALID"),
    (b"\x00\x01garbage", "application/octet-stream", "PHONE_NUMBER_INVALID"),
])
async def test_garbage_bodies_get_an_envelope(client: httpx.AsyncClient, content: bytes,
                                              content_type: str, error: str) -> None:
    response = await client.post("sendVerificationMessage", content=content,
                                 headers={**AUTH, "Content-Type": content_type})
    assert response.status_code == 200
    assert error_of(response.json()) == error


WRONG_VALUES: list[Any] = [None, True, 1.5, float("1e300"), [], {}, {"a": [1]}, "x" * 10_000,
                           10**30, -1, "💥", "\x00"]


@pytest.mark.parametrize("method", ["checkSendAbility", "sendVerificationMessage",
                                    "checkVerificationStatus", "revokeVerificationMessage"])
async def test_wrong_types_never_crash(sim: TelegramGatewaySim, client: httpx.AsyncClient,
                                       method: str) -> None:
    for value in WRONG_VALUES:  # one server for the whole matrix: starting one costs ~0.2 s
        body = {name: value for name in ("phone_number", "request_id", "code", "code_length",
                                         "ttl", "payload", "callback_url", "sender_username")}
        response = await client.post(method, json=body, headers=AUTH)
        assert response.status_code == 200, value
        assert response.json()["ok"] is False, value
    assert sim.messages == {} and sim.balance_usd == Decimal("100")


async def test_nan_and_huge_numbers_in_json(client: httpx.AsyncClient) -> None:
    content = b'{"phone_number": "+79991234560", "ttl": NaN, "code_length": 1e999}'
    response = await client.post("sendVerificationMessage", content=content,
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200
    assert error_of(response.json()) in ("CODE_LENGTH_INVALID", "TTL_INVALID")


async def test_other_http_methods_are_not_served(client: httpx.AsyncClient) -> None:
    response = await client.put("sendVerificationMessage", headers=AUTH)
    assert response.status_code == 405


# --------------------------------------------------------------------------- lifecycle


async def test_stop_cancels_pending_timers(call: Call, sim: TelegramGatewaySim,
                                           receiver: Receiver) -> None:
    sim.set_rule(PHONE, NumberRule(report_delay_s=3600))
    request_id = result_of(await call("sendVerificationMessage", phone_number=PHONE,
                                      callback_url=receiver.url))["request_id"]
    await asyncio.wait_for(sim.stop(), timeout=WAIT_S)
    await asyncio.wait_for(sim.settle(), timeout=WAIT_S)
    assert sim.messages[request_id].status == "sent"
    assert receiver.received == []


async def test_two_simulators_get_their_own_ports() -> None:
    first, second = TelegramGatewaySim(TOKEN), TelegramGatewaySim(TOKEN)
    urls = [await first.start(), await second.start()]
    try:
        assert urls[0] != urls[1]
        assert all(url.startswith("http://127.0.0.1:") and url.endswith("/") for url in urls)
    finally:
        await first.stop()
        await second.stop()
