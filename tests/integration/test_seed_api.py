"""The seed 002 JSON API contract (POST /api/send/, our /api/status/) through the real app.

Every test runs against a started Gateway with the sandbox world (the number's last digit picks
the behaviour of each channel) on SQLite and on PostgreSQL. Waiting is always a bounded poll of
the API or the database, never a fixed sleep that a result depends on.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.sql.schema import Table

from kaskad.bootstrap import Gateway
from kaskad.domain.callbacks import verify
from kaskad.services.admin import Admin
from kaskad.storage.schema import ledger, outbox, verifications
from tests.helpers import callback_transport

SEND = "/api/send/"
STATUS = "/api/status/"
CALLBACK_URL = "http://kaskad.test/demo/callbacks"
START_BALANCE = 5000  # the test balance of every new account: 50.00 RUB
FINAL_STATES = {"delivered", "sms", "voice", "flash_call", "not_delivered"}
SEND_KEYS = {"result", "state", "state_reason", "resend", "number", "code", "price", "request_id"}
STATUS_KEYS = SEND_KEYS | {"date"}
CALLBACK_KEYS = {"request_id", "number", "code", "state", "price", "date"}
SEED_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
WAIT_S = 5.0
TICK_S = 0.02


def error(code: str) -> dict[str, str]:
    return {"result": "error", "error_code": code}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": key}


async def eventually(probe: Callable[[], Awaitable[Any]], what: str,
                     timeout_s: float = WAIT_S) -> Any:
    """Await `probe()` until it returns something truthy; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(TICK_S)


async def count(gateway: Gateway, table: Table, *where: Any) -> int:
    async with gateway.db.read() as conn:
        query = select(func.count()).select_from(table)
        if where:
            query = query.where(*where)
        return int((await conn.execute(query)).scalar_one())


async def status_of(client: httpx.AsyncClient, key: str, request_id: str) -> dict[str, Any]:
    r = await client.get(STATUS, params={"request_id": request_id}, headers=auth(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["result"] == "ok", body
    return body


async def final_status(client: httpx.AsyncClient, key: str, request_id: str,
                       timeout_s: float = WAIT_S) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = await status_of(client, key, request_id)
        return body if body["state"] in FINAL_STATES else None

    result: dict[str, Any] = await eventually(probe, f"{request_id} to be final", timeout_s)
    return result


async def send_ok(client: httpx.AsyncClient, key: str, **fields: Any) -> dict[str, Any]:
    r = await client.post(SEND, json=fields, headers=auth(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["result"] == "ok", body
    assert set(body) == SEND_KEYS
    return body


async def assert_nothing_written(gateway: Gateway, admin: Admin, name: str = "acme",
                                 balance: int = START_BALANCE) -> None:
    """A rejected request leaves no verification, no hold and no ledger entry behind."""
    account = await admin.account(name)
    assert (account.balance, account.held) == (balance, 0)
    assert await count(gateway, verifications) == 0
    assert await count(gateway, outbox) == 0
    # Only the test balance top-up from account creation.
    assert await count(gateway, ledger, ledger.c.account_id == account.id) == 1


# --------------------------------------------------------------------------- callbacks fixture


class Receiver:
    """The customer's callback endpoint, behind an httpx.MockTransport."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[int] = []  # statuses to give, in order; then 200

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.answers.pop(0) if self.answers else 200
        return httpx.Response(status, json={"ok": status == 200})

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]


@pytest.fixture
async def receiver(gateway: Gateway) -> AsyncIterator[Receiver]:
    """Route the gateway's callback sender to an in-memory receiver (no network)."""
    recv = Receiver()
    gateway.callbacks.transport = callback_transport(recv.handle)
    yield recv


# --------------------------------------------------------------------------- 1. error codes


@pytest.mark.parametrize("content", [
    pytest.param(b'{"number": "79001234560"', id="malformed-json"),
    # A wrong JSON type in any field is a malformed request; a wrong value of the right type
    # gets the field's own code (see the code_length and code tests).
    pytest.param(b'{"number": ["79001234560"]}', id="number-as-list"),
    pytest.param(b'{"number": "79001234560", "code_length": true}', id="code-length-bool"),
    pytest.param(b'{"number": "79001234560", "code_length": ["4"]}', id="code-length-list"),
    pytest.param(b'{"number": "79001234560", "code": true}', id="code-bool"),
    pytest.param(b'{"number": "79001234560", "code": {"v": "1234"}}', id="code-object"),
    pytest.param(b'{"number": "79001234560", "resending": "fax"}', id="resending-fax"),
    pytest.param(b'{"number": "79001234560", "resending": 1}', id="resending-number"),
    pytest.param(b'{"number": "79001234560", "fax": "yes"}', id="unknown-field"),
    pytest.param(b'{"number": "79001234560", "callback_url": "ftp://x"}', id="callback-ftp"),
    pytest.param(b'{"number": "79001234560", "security": "k"}', id="security-not-object"),
])
async def test_unknown_request(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                               api_key: str, content: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    if b"security" not in content:
        headers.update(auth(api_key))
    r = await client.post(SEND, content=content, headers=headers)
    assert (r.status_code, r.json()) == (200, error("unknown_request"))
    await assert_nothing_written(gateway, admin)


@pytest.mark.parametrize("how", ["no-key", "wrong-key", "wrong-json-key", "revoked-key"])
async def test_authorisation_failed(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                                    api_key: str, how: str) -> None:
    body: dict[str, Any] = {"number": "79001234560"}
    headers: dict[str, str] = {}
    if how == "wrong-key":
        headers = auth("not-a-key-" + api_key[:8])
    elif how == "wrong-json-key":
        body["apiKey"] = api_key + "x"
    elif how == "revoked-key":
        [key] = await admin.keys("acme")
        await admin.revoke_key("acme", int(str(key["id"])))
        headers = auth(api_key)
    r = await client.post(SEND, json=body, headers=headers)
    assert (r.status_code, r.json()) == (200, error("authorisation_failed"))
    await assert_nothing_written(gateway, admin)


async def test_user_disabled(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                             api_key: str) -> None:
    await admin.set_disabled("acme", True)
    r = await client.post(SEND, json={"number": "79001234560"}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("user_disabled"))
    await assert_nothing_written(gateway, admin)
    await admin.set_disabled("acme", False)
    await send_ok(client, api_key, number="79001234560")


@pytest.mark.parametrize("number", [None, "", "   ", "abcdefghijk", "+7 900 ABC-45-60", 12,
                                    "7" * 40])
async def test_number_is_empty(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                               api_key: str, number: object) -> None:
    body = {} if number is None else {"number": number}
    r = await client.post(SEND, json=body, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_is_empty"))
    await assert_nothing_written(gateway, admin)


async def test_number_not_valid(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                                api_key: str) -> None:
    r = await client.post(SEND, json={"number": "70000000000"}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_not_valid"))
    await assert_nothing_written(gateway, admin)


async def test_number_not_permitted_direction(client: httpx.AsyncClient, gateway: Gateway,
                                              admin: Admin, api_key: str) -> None:
    # A Kazakhstan number; the account has the default directions (RU only).
    r = await client.post(SEND, json={"number": "77012345678"}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_not_permitted"))
    await assert_nothing_written(gateway, admin)


async def test_number_not_permitted_without_tariff(client: httpx.AsyncClient, gateway: Gateway,
                                                   admin: Admin, api_key: str) -> None:
    # KZ is permitted, but the plan has no KZ prices: what cannot be billed is not sent.
    await admin.set_directions("acme", ["RU", "KZ"])
    r = await client.post(SEND, json={"number": "77012345678"}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_not_permitted"))
    await assert_nothing_written(gateway, admin)


async def test_number_not_permitted_without_fallback_tariff(
        client: httpx.AsyncClient, gateway: Gateway, admin: Admin, api_key: str) -> None:
    # A plan that prices Telegram but not voice: resending=voice cannot be billed.
    await admin.set_tariff("tg-only", "telegram", "RU", 100)
    await admin.set_plan("acme", "tg-only")
    r = await client.post(SEND, json={"number": "79001234560", "resending": "voice"},
                          headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_not_permitted"))
    await assert_nothing_written(gateway, admin)


@pytest.mark.parametrize("sent_as", ["79001234560", "+7 (900) 123-45-60", "89001234560"])
async def test_number_in_global_spam_list(client: httpx.AsyncClient, gateway: Gateway,
                                          admin: Admin, api_key: str, sent_as: str) -> None:
    await admin.spam_add("79001234560")
    r = await client.post(SEND, json={"number": sent_as}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_in_spam_list"))
    await assert_nothing_written(gateway, admin)


async def test_number_in_account_spam_list(client: httpx.AsyncClient, gateway: Gateway,
                                           admin: Admin, api_key: str) -> None:
    await admin.spam_add("79001234560", "acme")
    r = await client.post(SEND, json={"number": "79001234560"}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("number_in_spam_list"))
    await assert_nothing_written(gateway, admin)


async def test_other_accounts_spam_list_does_not_block(client: httpx.AsyncClient,
                                                       admin: Admin, api_key: str) -> None:
    other = await admin.create_account("other")
    await admin.spam_add("79001234560", "other")
    await send_ok(client, api_key, number="79001234560")
    r = await client.post(SEND, json={"number": "79001234560"}, headers=auth(other.api_key))
    assert r.json() == error("number_in_spam_list")


async def test_not_enough_money(client: httpx.AsyncClient, gateway: Gateway,
                                admin: Admin) -> None:
    poor = await admin.create_account("poor", balance_kop=100)  # Telegram costs 1.50
    r = await client.post(SEND, json={"number": "79001234560"}, headers=auth(poor.api_key))
    assert (r.status_code, r.json()) == (200, error("not_enough_money"))
    await assert_nothing_written(gateway, admin, "poor", 100)


async def test_not_enough_money_for_the_dearest_step(client: httpx.AsyncClient, gateway: Gateway,
                                                     admin: Admin) -> None:
    # 2.00 covers Telegram (1.50) but not the voice fallback (4.50) it might end up using.
    poor = await admin.create_account("poor", balance_kop=200)
    r = await client.post(SEND, json={"number": "79001234560", "resending": "voice"},
                          headers=auth(poor.api_key))
    assert (r.status_code, r.json()) == (200, error("not_enough_money"))
    await assert_nothing_written(gateway, admin, "poor", 200)


@pytest.mark.parametrize("length", [3, 9, "3", "abc", 0, -4, 4.5])
async def test_code_length_not_permitted(client: httpx.AsyncClient, gateway: Gateway,
                                         admin: Admin, api_key: str, length: object) -> None:
    r = await client.post(SEND, json={"number": "79001234560", "code_length": length},
                          headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("code_length_not_permitted"))
    await assert_nothing_written(gateway, admin)


@pytest.mark.parametrize("code", ["12a4", "12 4", "-123", "１２３４", -1234, 12.5])
async def test_code_not_correct(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                                api_key: str, code: object) -> None:
    r = await client.post(SEND, json={"number": "79001234560", "code": code},
                          headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("code_not_correct"))
    await assert_nothing_written(gateway, admin)


@pytest.mark.parametrize(("code", "length"), [("12345", 4), ("12345", "4"), ("123", None),
                                              ("1234", 6), (123456, 4)])
async def test_code_length_error(client: httpx.AsyncClient, gateway: Gateway, admin: Admin,
                                 api_key: str, code: object, length: object) -> None:
    body: dict[str, Any] = {"number": "79001234560", "code": code}
    if length is not None:
        body["code_length"] = length
    r = await client.post(SEND, json=body, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error("code_length_error"))
    await assert_nothing_written(gateway, admin)


# --------------------------------------------------------------------------- 2. success


async def test_php_example_request(client: httpx.AsyncClient, admin: Admin, api_key: str,
                                   receiver: Receiver) -> None:
    """Exactly what the seed's PHP sample sends: raw key in Authorization, JSON body."""
    body = orjson.dumps({"number": "79001234560", "code_length": "4", "code": "1234",
                         "callback_url": CALLBACK_URL})
    r = await client.post(SEND, content=body, headers={"Content-Type": "application/json",
                                                       "Authorization": api_key})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert set(answer) == SEND_KEYS
    assert answer["result"] == "ok"
    assert answer["number"] == "79001234560"
    assert answer["code"] == "1234"
    assert answer["price"] == "1.50"
    assert answer["resend"] == ""
    assert answer["state"] in {"pending", "sent", "delivered"}
    assert isinstance(answer["request_id"], str) and answer["request_id"]
    final = await final_status(client, api_key, answer["request_id"])
    assert final["state"] == "delivered"


@pytest.mark.parametrize("where", ["json-top-level", "json-security", "bearer",
                                   "header-padded"])
async def test_key_locations(client: httpx.AsyncClient, api_key: str, where: str) -> None:
    body: dict[str, Any] = {"number": "79001234560", "code": "4321"}
    headers: dict[str, str] = {}
    if where == "json-top-level":
        body["apiKey"] = api_key
    elif where == "json-security":
        body["security"] = {"apiKey": api_key}
    elif where == "bearer":
        headers = {"Authorization": f"Bearer {api_key}"}
    else:
        headers = {"Authorization": f"  {api_key}  "}
    r = await client.post(SEND, json=body, headers=headers)
    answer = r.json()
    assert answer["result"] == "ok", answer
    assert answer["code"] == "4321"


@pytest.mark.parametrize("length", [4, 5, 6, "6"])
async def test_generated_code_has_the_requested_length(client: httpx.AsyncClient, api_key: str,
                                                       length: object) -> None:
    answer = await send_ok(client, api_key, number="79001234560", code_length=length)
    assert re.fullmatch(rf"\d{{{int(str(length))}}}", answer["code"]), answer


async def test_default_code_length_is_four(client: httpx.AsyncClient, api_key: str) -> None:
    answer = await send_ok(client, api_key, number="79001234560")
    assert re.fullmatch(r"\d{4}", answer["code"]), answer


# --------------------------------------------------------------------------- 3. cascade


CASCADE = [
    # number, resending, answer states allowed, answer resend, final state, final resend, price
    pytest.param("79001234560", None, {"sent", "delivered"}, "", "delivered", "", "1.50",
                 id="0-telegram-delivers"),
    pytest.param("79001234564", "sms", {"send_sms"}, "sms", "sms", "sms", "3.50",
                 id="4-sms"),
    pytest.param("79001234564", "voice", {"send_voice", "voice"}, "voice", "voice", "voice",
                 "4.50", id="4-voice"),
    pytest.param("79001234564", None, {"not_delivered"}, "", "not_delivered", "", "0.00",
                 id="4-stop"),
    pytest.param("79001234564", "stop", {"not_delivered"}, "", "not_delivered", "", "0.00",
                 id="4-explicit-stop"),
    pytest.param("79001234565", "sms", {"send_sms", "not_delivered"}, "sms", "not_delivered",
                 "sms", "0.00", id="5-sms-fails"),
    pytest.param("79001234563", "sms", {"sent"}, "", "sms", "sms", "3.50",
                 id="3-telegram-silent-then-sms"),
]


@pytest.mark.parametrize(("number", "resending", "answer_states", "answer_resend", "final_state",
                          "final_resend", "price"), CASCADE)
async def test_cascade_branch(client: httpx.AsyncClient, admin: Admin, api_key: str,
                              number: str, resending: str | None, answer_states: set[str],
                              answer_resend: str, final_state: str, final_resend: str,
                              price: str) -> None:
    fields: dict[str, Any] = {"number": number, "code": "5678"}
    if resending is not None:
        fields["resending"] = resending
    answer = await send_ok(client, api_key, **fields)
    assert answer["state"] in answer_states, answer
    assert answer["resend"] == answer_resend, answer
    final = await final_status(client, api_key, answer["request_id"])
    assert set(final) == STATUS_KEYS
    assert (final["state"], final["resend"], final["price"]) == (final_state, final_resend, price)
    assert final["code"] == "5678"
    assert final["number"] == number
    assert SEED_DATE.match(final["date"]), final
    account = await admin.account("acme")
    kopecks = int(price.replace(".", ""))
    assert (account.balance, account.held) == (START_BALANCE - kopecks, 0)


async def test_only_delivered_codes_are_paid(client: httpx.AsyncClient, admin: Admin,
                                             api_key: str) -> None:
    sends = [("79001234560", None), ("79001234564", "sms"), ("79001234564", "voice"),
             ("79001234564", None), ("79001234565", "sms"), ("79001234563", "sms")]
    answers = await asyncio.gather(*(
        send_ok(client, api_key, number=n, **({"resending": r} if r else {}))
        for n, r in sends))
    finals = [await final_status(client, api_key, a["request_id"]) for a in answers]
    assert [f["state"] for f in finals] == ["delivered", "sms", "voice", "not_delivered",
                                            "not_delivered", "sms"]
    paid = sum(int(f["price"].replace(".", "")) for f in finals)
    assert paid == 150 + 350 + 450 + 350
    account = await admin.account("acme")
    assert (account.balance, account.held) == (START_BALANCE - paid, 0)


async def test_concurrent_sends_lose_no_delivery_report(client: httpx.AsyncClient,
                                                       admin: Admin, api_key: str) -> None:
    """Many codes in flight at once: every delivery report must reach its verification.

    With several group-commit writers, an attempt (with its provider reference) and the report
    for it may be written by concurrent transactions; neither may leave the report unmatched.
    """
    await admin.topup("acme", 100_000)
    numbers = ["79001234560", "79001234564"] * 20  # Telegram delivers / no Telegram, SMS does
    answers = await asyncio.gather(*(send_ok(client, api_key, number=n, resending="sms")
                                     for n in numbers))
    finals = await asyncio.gather(*(final_status(client, api_key, a["request_id"])
                                    for a in answers))
    outcomes = Counter((a["number"], f["state"], f["state_reason"], f["price"])
                       for a, f in zip(answers, finals, strict=True))
    assert outcomes == {("79001234560", "delivered", "", "1.50"): 20,
                        ("79001234564", "sms", "telegram_rejected", "3.50"): 20}
    account = await admin.account("acme")
    assert (account.balance, account.held) == (START_BALANCE + 100_000 - 20 * (150 + 350), 0)


# --------------------------------------------------------------------------- 4. callbacks


async def _delivered_outbox(gateway: Gateway, request_id: str) -> bool:
    return await count(gateway, outbox, outbox.c.request_id == request_id,
                       outbox.c.delivered_at.is_not(None)) == 1


@pytest.mark.parametrize(("number", "resending", "state", "price"), [
    ("79001234560", None, "delivered", "1.50"),
    ("79001234564", "sms", "sms", "3.50"),
    ("79001234564", None, "not_delivered", "0.00"),
])
async def test_final_callback_is_signed_seed_body(
        client: httpx.AsyncClient, gateway: Gateway, admin: Admin, api_key: str,
        receiver: Receiver, number: str, resending: str | None, state: str,
        price: str) -> None:
    fields: dict[str, Any] = {"number": number, "code": "1234", "callback_url": CALLBACK_URL}
    if resending:
        fields["resending"] = resending
    answer = await send_ok(client, api_key, **fields)
    rid = answer["request_id"]
    await eventually(lambda: _delivered_outbox(gateway, rid), "the callback to be delivered")
    [request] = receiver.requests
    assert request.method == "POST"
    assert str(request.url) == CALLBACK_URL
    assert request.headers["content-type"].startswith("application/json")
    body = orjson.loads(request.content)
    assert set(body) == CALLBACK_KEYS
    assert body["request_id"] == rid
    assert (body["number"], body["code"], body["state"], body["price"]) == (
        number, "1234", state, price)
    assert SEED_DATE.match(body["date"]), body
    assert request.headers["X-Kaskad-Event-Id"]
    account = await admin.account("acme")
    ts = int(request.headers["X-Kaskad-Timestamp"])
    assert verify(account.callback_secret, ts, request.content,
                  request.headers["X-Kaskad-Signature"])
    assert not verify(account.callback_secret, ts, request.content + b" ",
                      request.headers["X-Kaskad-Signature"])
    final = await status_of(client, api_key, rid)
    assert (final["state"], final["price"], final["date"]) == (state, price, body["date"])


async def test_callback_retried_with_same_event_id(client: httpx.AsyncClient, gateway: Gateway,
                                                   admin: Admin, api_key: str,
                                                   receiver: Receiver) -> None:
    receiver.answers = [500, 500, 200]
    answer = await send_ok(client, api_key, number="79001234560", callback_url=CALLBACK_URL)
    rid = answer["request_id"]
    await eventually(lambda: _delivered_outbox(gateway, rid), "the callback to be delivered")
    assert len(receiver.requests) == 3
    assert len({r.headers["X-Kaskad-Event-Id"] for r in receiver.requests}) == 1
    assert len({r.content for r in receiver.requests}) == 1
    secret = (await admin.account("acme")).callback_secret
    for r in receiver.requests:
        assert verify(secret, int(r.headers["X-Kaskad-Timestamp"]), r.content,
                      r.headers["X-Kaskad-Signature"])
    async with gateway.db.read() as conn:
        row = (await conn.execute(select(outbox).where(outbox.c.request_id == rid))).one()
    assert row.attempts == 3
    assert row.next_attempt_at is None


async def test_no_callback_without_callback_url(client: httpx.AsyncClient, gateway: Gateway,
                                                api_key: str, receiver: Receiver) -> None:
    answer = await send_ok(client, api_key, number="79001234560")
    await final_status(client, api_key, answer["request_id"])
    assert await count(gateway, outbox) == 0
    assert receiver.requests == []


# --------------------------------------------------------------------------- 5. status


async def test_status_by_get_and_post(client: httpx.AsyncClient, api_key: str) -> None:
    answer = await send_ok(client, api_key, number="79001234560", code="2468")
    rid = answer["request_id"]
    final = await final_status(client, api_key, rid)
    r = await client.post(STATUS, json={"request_id": rid}, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, final)
    r = await client.post(STATUS, json={"request_id": rid, "apiKey": api_key})
    assert r.json() == final
    r = await client.post(STATUS, json={"request_id": rid, "security": {"apiKey": api_key}})
    assert r.json() == final
    r = await client.get(STATUS, params={"request_id": rid, "apiKey": api_key})
    assert r.json() == final
    assert set(final) == STATUS_KEYS
    assert (final["request_id"], final["code"], final["state"]) == (rid, "2468", "delivered")


async def test_status_of_another_account_is_not_found(client: httpx.AsyncClient, admin: Admin,
                                                      api_key: str) -> None:
    answer = await send_ok(client, api_key, number="79001234560")
    other = await admin.create_account("other")
    rid = answer["request_id"]
    r = await client.get(STATUS, params={"request_id": rid}, headers=auth(other.api_key))
    assert (r.status_code, r.json()) == (200, error("not_found"))
    r = await client.post(STATUS, json={"request_id": rid}, headers=auth(other.api_key))
    assert (r.status_code, r.json()) == (200, error("not_found"))


@pytest.mark.parametrize(("method", "payload", "code"), [
    ("GET", None, "unknown_request"),
    ("GET", {"request_id": ""}, "unknown_request"),
    ("GET", {"request_id": "x" * 33}, "unknown_request"),
    ("POST", {}, "unknown_request"),
    ("POST", {"request_id": 12345}, "unknown_request"),
    ("POST", {"request_id": "abc", "number": "1"}, "unknown_request"),
    ("GET", {"request_id": "0" * 20}, "not_found"),
    ("POST", {"request_id": "0" * 20}, "not_found"),
])
async def test_status_errors(client: httpx.AsyncClient, api_key: str, method: str,
                             payload: dict[str, Any] | None, code: str) -> None:
    if method == "GET":
        r = await client.get(STATUS, params=payload, headers=auth(api_key))
    else:
        r = await client.post(STATUS, json=payload, headers=auth(api_key))
    assert (r.status_code, r.json()) == (200, error(code))


async def test_status_needs_a_key(client: httpx.AsyncClient, api_key: str) -> None:
    answer = await send_ok(client, api_key, number="79001234560")
    r = await client.get(STATUS, params={"request_id": answer["request_id"]})
    assert (r.status_code, r.json()) == (200, error("authorisation_failed"))
    r = await client.get(STATUS, params={"request_id": answer["request_id"]},
                         headers=auth("nope"))
    assert (r.status_code, r.json()) == (200, error("authorisation_failed"))


# --------------------------------------------------------------------------- 6. bad input


async def _chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"number": "'
    sent = 0
    while sent < total:
        yield b"1" * 1024
        sent += 1024
    yield b'"}'


BAD_INPUT: list[tuple[str, str, str, Callable[[], Any], int, str]] = [
    # id, method, path, content factory, status, error_code
    ("non-utf8", "POST", SEND, lambda: b"\xff\xfe", 200, "unknown_request"),
    ("non-utf8-in-string", "POST", SEND, lambda: b'{"number": "7900\xff"}', 200,
     "unknown_request"),
    ("empty", "POST", SEND, lambda: b"", 200, "unknown_request"),
    ("json-array", "POST", SEND, lambda: b'["79001234560"]', 200, "unknown_request"),
    ("json-string", "POST", SEND, lambda: b'"79001234560"', 200, "unknown_request"),
    ("json-null", "POST", SEND, lambda: b"null", 200, "unknown_request"),
    ("deep-nesting", "POST", SEND, lambda: b"[" * 5000 + b"]" * 5000, 200, "unknown_request"),
    ("nan", "POST", SEND, lambda: b'{"number": NaN}', 200, "unknown_request"),
    ("too-large", "POST", SEND, lambda: b'{"number": "' + b"1" * 17000 + b'"}', 413,
     "unknown_request"),
    ("too-large-chunked", "POST", SEND, lambda: _chunks(20 * 1024), 413, "unknown_request"),
    ("status-too-large", "POST", STATUS, lambda: b'{"request_id": "' + b"1" * 17000 + b'"}',
     413, "unknown_request"),
    ("status-non-utf8", "POST", STATUS, lambda: b"\xff\xfe", 200, "unknown_request"),
    ("unknown-path", "POST", "/api/nope/", lambda: b"{}", 404, "unknown_request"),
    ("unknown-path-get", "GET", "/api/sendd/", lambda: None, 404, "unknown_request"),
    ("wrong-method", "GET", SEND, lambda: None, 405, "unknown_request"),
    ("wrong-method-put", "PUT", SEND, lambda: b"{}", 405, "unknown_request"),
    ("status-wrong-method", "DELETE", STATUS, lambda: None, 405, "unknown_request"),
]


@pytest.mark.parametrize(("method", "path", "content", "status", "code"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT])
async def test_bad_input_answers_in_seed_shape(
        client: httpx.AsyncClient, gateway: Gateway, admin: Admin, api_key: str, method: str,
        path: str, content: Callable[[], Any], status: int, code: str) -> None:
    good = await send_ok(client, api_key, number="79001234560")
    headers = {"Content-Type": "application/json", **auth(api_key)}
    r = await client.request(method, path, content=content(), headers=headers)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text
    assert r.json() == error(code)
    assert await count(gateway, verifications) == 1
    await final_status(client, api_key, good["request_id"])
    account = await admin.account("acme")
    assert (account.balance, account.held) == (START_BALANCE - 150, 0)


async def test_many_bad_inputs_write_nothing(client: httpx.AsyncClient, gateway: Gateway,
                                             api_key: str) -> None:
    goods = [await send_ok(client, api_key, number=f"7900123456{d}") for d in "012"]
    headers = {"Content-Type": "application/json", **auth(api_key)}
    for _, method, path, content, status, code in BAD_INPUT:
        r = await client.request(method, path, content=content(), headers=headers)
        assert r.status_code < 500 and r.status_code == status, (path, r.text)
        assert r.json() == error(code)
    assert await count(gateway, verifications) == len(goods)
