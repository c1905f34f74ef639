"""The ssms-family API at `/` (spec/ssms-api.md) through the real app, on both databases.

The sandbox world drives the channels (a number's last digit: 0 Telegram delivers, 4 no
Telegram and SMS delivers, 5 SMS fails and the phone never calls back). Waiting is a bounded
poll, never a fixed sleep.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import update

from kaskad.api.compat.ssms import SsmsApi
from kaskad.bootstrap import Gateway
from kaskad.services.admin import Admin
from kaskad.services.wait_call import WaitRequest
from kaskad.storage.schema import verifications, web_sessions
from tests.helpers import callback_transport
from tests.integration.test_seed_api import eventually

DELIVERS = "79001234564"  # no Telegram; SMS delivered; the phone answers (and calls back)
FAILS = "79001234565"  # no Telegram; SMS not delivered; never answers, never calls
TELEGRAM = "79001234560"  # Telegram delivers
LONG_TEXT = "Напоминаем о записи к врачу. " * 4  # UCS-2, 116 characters: 2 parts


class Receiver:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


@pytest.fixture
async def receiver(gateway: Gateway) -> AsyncIterator[Receiver]:
    recv = Receiver()
    gateway.callbacks.transport = callback_transport(recv.handle)
    yield recv


async def call(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    """A GET with format=json, as most clients send it; the envelope's `response`."""
    r = await client.get("/", params={"format": "json", **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = orjson.loads(r.content)
    assert set(body) == {"response"} and set(body["response"]) == {"msg", "data"}
    msg = body["response"]["msg"]
    assert isinstance(msg["err_code"], str) and msg["text"]
    assert msg["type"] == ("message" if msg["err_code"] == "0" else "error")
    return dict(body["response"])


def err(answer: dict[str, Any]) -> int:
    return int(answer["msg"]["err_code"])


async def report_when_final(client: httpx.AsyncClient, key: str, msg_id: int,
                            ) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        data = (await call(client, method="get_msg_report", key=key, id=msg_id))["data"]
        return data if data["last_update"] else None

    result: dict[str, Any] = await eventually(probe, f"message {msg_id} final")
    return result


# --------------------------------------------------------------------------- push_msg


async def test_push_msg_is_delivered_and_charged_per_part_only_then(
        client: httpx.AsyncClient, admin: Admin, api_key: str) -> None:
    before = (await admin.account("acme")).balance
    answer = await call(client, method="push_msg", key=api_key, phone="8 (900) 123-45-64",
                        text=LONG_TEXT, external_id="order-7")
    assert err(answer) == 0
    data = answer["data"]
    assert data["n_raw_sms"] == 2 and data["credits"] == "3.50"
    assert data["sender_name"] == "kaskad" and isinstance(data["id"], int)
    report = await report_when_final(client, api_key, data["id"])
    assert report["state"] == 1 and report["state_text"] == "Доставлено"
    assert report["phone"] == DELIVERS and report["text"] == LONG_TEXT
    assert report["credits"] == "7.00" and report["n_raw_sms"] == 2
    assert report["id_tarifs_group"] == "RU" and report["external_id"] == "order-7"
    account = await admin.account("acme")
    assert (account.balance, account.held) == (before - 700, 0)


async def test_undelivered_message_costs_nothing(client: httpx.AsyncClient, admin: Admin,
                                                 api_key: str) -> None:
    before = (await admin.account("acme")).balance
    data = (await call(client, method="push_msg", key=api_key, phone=FAILS,
                       text="Hello"))["data"]
    report = await report_when_final(client, api_key, data["id"])
    assert report["state"] == 2 and report["credits"] == "0.00"
    account = await admin.account("acme")
    assert (account.balance, account.held) == (before, 0)


async def test_xml_is_the_default_and_every_body_form_is_read(
        client: httpx.AsyncClient, api_key: str) -> None:
    form = {"method": "push_msg", "key": api_key, "phone": DELIVERS, "text": "Hi"}
    answers = [
        await client.get("/", params=form),
        await client.post("/", data=form),
        await client.post("/", files={k: (None, v) for k, v in form.items()}),  # multipart
        await client.post("/?" + str(httpx.QueryParams(form)), content=b""),
        await client.post("", data={**form, "format": "JSON"}),
    ]
    for r in answers[:4]:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/xml; charset=utf-8"
        root = ET.fromstring(r.content)
        assert root.tag == "response"
        assert root.findtext("msg/err_code") == "0" and root.findtext("msg/type") == "message"
        assert root.findtext("data/id", "").isdigit()
        assert root.findtext("data/n_raw_sms") == "1"
    assert orjson.loads(answers[4].content)["response"]["msg"]["err_code"] == "0"


async def test_status_callback_and_several_numbers(client: httpx.AsyncClient, api_key: str,
                                                   receiver: Receiver) -> None:
    answer = await call(client, method="push_msg", key=api_key, phone=f"{DELIVERS},{FAILS}",
                        text="Hi", external_id="x1", dlr_url="http://customer.test/dlr?s=1")
    ids = answer["data"]["ids"]
    assert len(ids) == 2 and answer["data"]["id"] == ids[0]

    async def two() -> bool:
        return len(receiver.requests) >= 2

    await eventually(two, "two status callbacks")
    bodies = {b["id"]: b for b in (orjson.loads(r.content) for r in receiver.requests)}
    assert bodies[ids[0]]["state"] == 1 and bodies[ids[1]]["state"] == 2
    assert bodies[ids[0]]["external_id"] == "x1" and bodies[ids[0]]["credits"] == "3.50"
    assert all(r.url.host == "customer.test" and r.headers["x-kaskad-signature"]
               for r in receiver.requests)


async def test_codes_in_sms_go_to_telegram_when_the_account_asks(
        client: httpx.AsyncClient, admin: Admin, api_key: str) -> None:
    await admin.settings("acme", {"sms_codes_to_telegram": "true"})
    code_text = "Ваш код подтверждения: 4821. Никому его не сообщайте."
    by_telegram = (await call(client, method="push_msg", key=api_key, phone=TELEGRAM,
                              text=code_text))["data"]
    fallback = (await call(client, method="push_msg", key=api_key, phone=DELIVERS,
                           text=code_text))["data"]
    reminder = (await call(client, method="push_msg", key=api_key, phone=TELEGRAM,
                           text="Семинар 12.03 в 15:00, ауд. 4821"))["data"]
    tg = await report_when_final(client, api_key, by_telegram["id"])
    assert (tg["state"], tg["channel"], tg["credits"]) == (1, "telegram", "1.50")
    sms = await report_when_final(client, api_key, fallback["id"])
    assert (sms["state"], sms["channel"], sms["credits"]) == (1, "sms", "3.50")
    plain = await report_when_final(client, api_key, reminder["id"])
    assert (plain["state"], plain["channel"]) == (1, "sms")


async def test_route_tg_needs_a_code(client: httpx.AsyncClient, api_key: str) -> None:
    assert err(await call(client, method="push_msg", key=api_key, phone=TELEGRAM,
                          text="no code here", route="tg")) == 7
    ok = await call(client, method="push_msg", key=api_key, phone=TELEGRAM,
                    text="Code 123456", route="tg-sms")
    report = await report_when_final(client, api_key, ok["data"]["id"])
    assert report["channel"] == "telegram"


async def test_delayed_message_waits_for_its_time(client: httpx.AsyncClient,
                                                  gateway: Gateway, api_key: str) -> None:
    later = int(gateway.clock()) + 3600
    data = (await call(client, method="push_msg", key=api_key, phone=DELIVERS, text="Later",
                       set_aside_time=later))["data"]
    report = (await call(client, method="get_msg_report", key=api_key, id=data["id"]))["data"]
    assert report["state"] == 0 and report["last_update"] == ""


# --------------------------------------------------------------------------- errors


async def test_error_codes(client: httpx.AsyncClient, admin: Admin, api_key: str) -> None:
    send = {"method": "push_msg", "key": api_key, "phone": DELIVERS, "text": "Hi"}
    await admin.spam_add("79001234561", "acme")
    await admin.spam_add("79001234562")
    cases: list[tuple[dict[str, Any], int]] = [
        ({"method": "nope", "key": api_key}, 5),
        ({"key": api_key}, 7),
        ({**send, "text": ""}, 7),
        ({**send, "phone": ""}, 7),
        ({**send, "phone": "12"}, 617),
        ({**send, "phone": "79001234561"}, 618),
        ({**send, "phone": "79001234562"}, 622),
        ({**send, "sender_name": "Unknown"}, 607),
        ({**send, "sender_name": "ABCDEFGHIJKLM"}, 608),
        ({**send, "sender_name": "Магазин"}, 620),
        ({**send, "sender_name": "a/b"}, 621),
        ({**send, "text": "Ваш Сбeрбанк"}, 631),  # a Latin "e" inside a Cyrillic word
        ({**send, "phone": ",".join(["79001234564"] * 51)}, 629),
        ({**send, "route": "vb"}, 609),
        ({**send, "phone": "447911123456"}, 609),  # UK: not a permitted direction
        ({**send, "key": "wrong"}, 627),
        ({"method": "push_msg", "phone": DELIVERS, "text": "Hi"}, 625),
        ({"method": "get_msg_report", "key": api_key, "id": "999999"}, 602),
        ({"method": "get_msg_report", "key": api_key}, 7),
        ({"method": "wait_call", "key": api_key, "phone": DELIVERS}, 7),
        ({"method": "wait_call", "key": api_key, "phone": DELIVERS,
          "call_protection": "5"}, 7),
    ]
    for params, code in cases:
        assert err(await call(client, **params)) == code, params
    poor = (await admin.create_account("poor", balance_kop=100)).api_key
    assert err(await call(client, **{**send, "key": poor})) == 623
    await admin.set_disabled("poor", True)
    assert err(await call(client, **{**send, "key": poor})) == 605


async def test_another_accounts_message_is_not_found(client: httpx.AsyncClient, admin: Admin,
                                                     api_key: str) -> None:
    data = (await call(client, method="push_msg", key=api_key, phone=DELIVERS,
                       text="Hi"))["data"]
    other = (await admin.create_account("other")).api_key
    assert err(await call(client, method="get_msg_report", key=other, id=data["id"])) == 602


async def test_garbage_never_breaks_the_envelope(client: httpx.AsyncClient) -> None:
    for r in (await client.post("/", content=b"\xff\xfe", headers={
                  "content-type": "application/x-www-form-urlencoded"}),
              await client.post("/?format=json", content=b"{", headers={
                  "content-type": "application/json"}),
              await client.post("/", content=b"x" * 100_000)):
        assert r.status_code == 200
        assert b"err_code" in r.content


# --------------------------------------------------------------------------- auth


async def test_email_password_and_sessions(client: httpx.AsyncClient, admin: Admin,
                                           api_key: str) -> None:
    await admin.set_password("acme", "correct horse")
    login = {"email": "DEV@acme.example", "password": "correct horse"}
    profile = await call(client, method="get_profile", **login)
    assert err(profile) == 0 and profile["data"]["email"] == "dev@acme.example"
    assert profile["data"]["credits"] == "50.00" and profile["data"]["currency"] == "руб."
    assert err(await call(client, method="get_profile", email=login["email"],
                          password="wrong")) == 2
    sid = (await call(client, method="login", **login))["data"]["sid"]
    assert err(await call(client, method="get_profile", sid=sid)) == 0
    r = await client.get("/", params={"method": "get_profile", "format": "json"},
                         headers={"Cookie": f"sid={sid}"})
    assert orjson.loads(r.content)["response"]["msg"]["err_code"] == "0"
    assert err(await call(client, method="logout", sid=sid)) == 0
    assert err(await call(client, method="get_profile", sid=sid)) == 18
    # A key wins over a wrong login.
    assert err(await call(client, method="get_profile", key=api_key, email="x@y.z",
                          password="nope")) == 0


async def test_get_prices(client: httpx.AsyncClient, api_key: str) -> None:
    data = (await call(client, method="get_prices", key=api_key))["data"]
    assert data["group_directions"]["RU"]["sms"] == "3.50"
    assert data["group_directions"]["RU"]["telegram"] == "1.50"


async def test_approved_sender(client: httpx.AsyncClient, admin: Admin, api_key: str) -> None:
    await admin.settings("acme", {"senders": "MyShop,Acme-1"})
    data = (await call(client, method="push_msg", key=api_key, phone=DELIVERS, text="Hi",
                       sender_name="myshop"))["data"]
    assert data["sender_name"] == "MyShop"
    report = await report_when_final(client, api_key, data["id"])
    assert report["sender_name"] == "MyShop"


# --------------------------------------------------------------------------- wait_call


async def test_wait_call_is_confirmed_by_the_subscribers_call(
        client: httpx.AsyncClient, admin: Admin, api_key: str, gateway: Gateway,
        receiver: Receiver) -> None:
    before = (await admin.account("acme")).balance
    data = (await call(client, method="wait_call", key=api_key, phone="+7 900 123-45-64",
                       call_protection=120,
                       hook_url="http://customer.test/hook?secret=s3"))["data"]
    assert data["call_to_number"] in gateway.settings.telephony.pool
    assert data["waiting_call_from"] == DELIVERS and data["id_call"]

    async def hooked() -> bool:
        return bool(receiver.requests)

    await eventually(hooked, "the hook GET")  # the sandbox subscriber called
    hook = receiver.requests[0]
    assert hook.method == "GET"
    query = {k: v[0] for k, v in parse_qs(urlsplit(str(hook.url)).query).items()}
    assert query["secret"] == "s3" and query["status"] == "ok"
    assert query["id_call"] == data["id_call"] and query["phone"] == DELIVERS
    assert query["call_to_number"] == data["call_to_number"]
    # Calling again confirms nothing new and calls the customer no more.
    assert await gateway.incoming_calls.on_call(DELIVERS, data["call_to_number"]) == "repeat"
    await gateway.callbacks.run_once()
    assert len(receiver.requests) == 1
    account = await admin.account("acme")
    assert (account.balance, account.held) == (before - 50, 0)


async def test_only_the_waiting_subscriber_confirms(client: httpx.AsyncClient,
                                                    gateway: Gateway, api_key: str) -> None:
    first = (await call(client, method="wait_call", key=api_key, phone=FAILS,
                        call_protection=60))["data"]
    # The same subscriber waiting twice at once is given two different pool numbers.
    twice = (await call(client, method="wait_call", key=api_key, phone=FAILS,
                        call_protection=60))["data"]
    assert twice["call_to_number"] != first["call_to_number"]
    other = "79001234575"  # another subscriber who never calls by themselves
    second = (await call(client, method="wait_call", key=api_key, phone=other,
                         call_protection=60))["data"]
    pool_number = first["call_to_number"]
    on_call = gateway.incoming_calls.on_call
    assert await on_call("79001112233", pool_number) == "unknown"
    assert await on_call(FAILS, "79990000000") == "not_ours"
    assert await on_call("8 900 123-45-65", pool_number) == "matched"
    assert await on_call(other, second["call_to_number"]) == "matched"
    assert await on_call(FAILS, twice["call_to_number"]) == "matched"

    async def confirmed() -> bool:
        rows = [await gateway.await_state(d["id_call"], lambda v: v.final, 0.1)
                for d in (first, twice, second)]
        return all(v is not None and v.state.value == "call" for v in rows)

    await eventually(confirmed, "three confirmed waits")


async def test_a_call_after_the_window_confirms_nothing(make_gateway: Any) -> None:
    gw: Gateway = await make_gateway()
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    account = (await admin.create_account("acme")).account
    v = await gw.wait_call(WaitRequest(account.id, FAILS, 30, None))
    transitions = gw.transitions
    # Let the window pass: the wait's deadline is its own 30 s.
    assert transitions.policy(v).steps[0].report_timeout_s == 30.0
    expired = await gw.await_state(v.request_id, lambda x: x.state.value == "wait_call", 5.0)
    assert expired is not None
    async with gw.db.write() as conn:  # the deadline, brought forward
        await conn.execute(update(verifications).where(
            verifications.c.request_id == v.request_id).values(next_run_at=0))
    gw.engine.wake()
    done = await gw.await_state(v.request_id, lambda x: x.final, 10.0)
    assert done is not None and done.state.value == "not_delivered"
    assert await gw.incoming_calls.on_call(FAILS, v.call_to or "") == "late"
    acct = await admin.account("acme")
    assert (acct.balance, acct.held) == (5000, 0)


async def test_push_msg_with_call_protection(client: httpx.AsyncClient, api_key: str,
                                             gateway: Gateway) -> None:
    data = (await call(client, method="push_msg", key=api_key, phone=FAILS, text="Hi",
                       call_protection=90))["data"]
    assert data["call_to_number"] in gateway.settings.telephony.pool and data["id_call"]


async def test_a_session_is_known_to_every_node_and_ends_when_idle(
        client: httpx.AsyncClient, admin: Admin, api_key: str, make_gateway: Any) -> None:
    """Sessions live in the database: a sid from one node works on another (KASKAD_WORKERS,
    several hosts); an idle one ends, and then both answer 18."""
    await admin.set_password("acme", "correct horse")
    sid = (await call(client, method="login", email="dev@acme.example",
                      password="correct horse"))["data"]["sid"]
    other = SsmsApi(await make_gateway())
    _, body = await other.answer({"method": "get_profile", "format": "json", "sid": sid}, {})
    assert orjson.loads(body)["response"]["msg"]["err_code"] == "0"
    other.session_idle_s = 0.0  # as if 24 minutes passed since the last call
    async with other.gw.db.write() as conn:
        await conn.execute(update(web_sessions).values(expires_at=0))
    _, body = await other.answer({"method": "get_profile", "format": "json", "sid": sid}, {})
    assert orjson.loads(body)["response"]["msg"]["err_code"] == "18"
    assert err(await call(client, method="get_profile", sid=sid)) == 18


async def test_failed_logins_are_throttled(client: httpx.AsyncClient, admin: Admin,
                                           api_key: str) -> None:
    """Guessing a password over the ssms API crawls like in the cabinet: after 5 failures
    even the right password is refused for a while (and the key still works)."""
    await admin.set_password("acme", "correct horse")
    for _ in range(5):
        assert err(await call(client, method="get_profile", email="dev@acme.example",
                              password="guess")) == 2
    refused = await call(client, method="get_profile", email="dev@acme.example",
                         password="correct horse")
    assert err(refused) == 2
    assert err(await call(client, method="get_profile", key=api_key)) == 0
