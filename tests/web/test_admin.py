"""The operator's pages over HTTP on both databases: only admins reach them; their forms
validate in place and change what they say."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from sqlalchemy import select

from kaskad.bootstrap import Gateway
from kaskad.services.admin import Admin
from kaskad.storage.schema import ledger
from tests.web.conftest import csrf_of, post_form, register

PAGES = ("/admin/", "/admin/tariffs", "/admin/channels", "/admin/spam", "/admin/accounts/1")


ONCE = re.compile(r'name="once" value="([^"]+)"')


async def _topup_form(client: httpx.AsyncClient, base: str) -> dict[str, str]:
    """The top-up form's hidden fields, as a browser holds them after loading the page."""
    page = (await client.get(base)).text
    once = ONCE.search(page)
    assert once, page
    return {"csrf": csrf_of(page), "once": once.group(1)}


async def _topup(client: httpx.AsyncClient, base: str, amount: str) -> httpx.Response:
    return await client.post(f"{base}/topup", data={**await _topup_form(client, base),
                                                    "amount": amount})


async def _login(client: httpx.AsyncClient, email: str, password: str) -> None:
    answer = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": email, "password": password})
    assert answer.status_code == 303, answer.text


async def test_admin_pages_are_for_admins_only(client: httpx.AsyncClient, admin: Admin,
                                               operator: tuple[str, str]) -> None:
    for page in PAGES:
        anonymous = await client.get(page)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == \
            "/cabinet/login", page
    await register(client, "customer@example.com")
    for page in PAGES:
        assert (await client.get(page)).status_code == 403, page
    forged = await post_form(client, "/cabinet/", "/admin/accounts/1/topup",
                             {"amount": "1000"})
    assert forged.status_code == 403
    assert (await admin.account("ops")).balance == 5000


@pytest.fixture
async def ops_client(client: httpx.AsyncClient, operator: tuple[str, str]) -> httpx.AsyncClient:
    await _login(client, *operator)
    return client


async def test_pages_render(ops_client: httpx.AsyncClient) -> None:
    for page in PAGES:
        answer = await ops_client.get(page)
        assert answer.status_code == 200, (page, answer.text)
    channels = (await ops_client.get("/admin/channels")).text
    assert "7495123000" in channels and "Telegram" in channels  # the pool, the health
    assert (await ops_client.get("/admin/accounts/999")).status_code == 404


# A key with no text renders as the key itself ("admin.plan"): none may reach a page.
MISSING_KEY = re.compile(r"\b(?:admin|done|err|ch|login|form|error)\.[a-z_.]+\b")


async def test_pages_speak_russian_first_and_english_on_request(
        ops_client: httpx.AsyncClient) -> None:
    for query, lang in (("", "ru"), ("?lang=en", "en"), ("", "en"), ("?lang=ru", "ru")):
        for page in PAGES:  # the chosen language sticks (a cookie), like the cabinet's
            html = (await ops_client.get(page + query)).text
            assert f'<html lang="{lang}">' in html, (page, query)
            assert not MISSING_KEY.search(html), (page, html)
            assert ("Аккаунты" if lang == "ru" else "Accounts") in html


async def test_flash_and_errors_in_both_languages(ops_client: httpx.AsyncClient,
                                                  admin: Admin) -> None:
    customer = await admin.create_account("shop", email="shop@example.com")
    base = f"/admin/accounts/{customer.account.id}"
    done = await post_form(ops_client, base, f"{base}/plan", {"plan": "gold"})
    assert "Тарифный план назначен" in (await ops_client.get(done.headers["location"])).text
    await ops_client.get(base + "?lang=en")
    bad = await _topup(ops_client, base, "lots")
    assert "Roubles, e.g. 100 or 12.50" in bad.text and "Please fix the errors" in bad.text
    english = await ops_client.get(f"{base}?done=plan")
    assert "The tariff plan was set" in english.text
    forged = await ops_client.get(f"{base}?done=<script>")
    assert "<script>" not in forged.text and 'id="done"' not in forged.text


async def test_topup_plan_senders_disable(ops_client: httpx.AsyncClient, admin: Admin) -> None:
    customer = await admin.create_account("shop", email="shop@example.com")
    base = f"/admin/accounts/{customer.account.id}"
    bad = await _topup(ops_client, base, "lots")
    assert bad.status_code == 400 and "Сумма в рублях" in bad.text
    below = await _topup(ops_client, base, "-100")
    assert below.status_code == 400 and "ниже нуля" in below.text
    assert (await admin.account("shop")).balance == 5000
    ok = await _topup(ops_client, base, "150.50")
    assert ok.status_code == 303
    assert (await admin.account("shop")).balance == 5000 + 15050
    assert (await post_form(ops_client, base, f"{base}/plan", {"plan": "bad plan!"})
            ).status_code == 400
    assert (await post_form(ops_client, base, f"{base}/plan", {"plan": "gold"})
            ).status_code == 303
    assert (await admin.account("shop")).tariff_plan == "gold"
    await admin.settings("shop", {"senders": "Old", "default_sender": "Old"})
    assert (await post_form(ops_client, base, f"{base}/senders",
                            {"senders": "Shop, Too-long-sender-name"})).status_code == 400
    assert (await post_form(ops_client, base, f"{base}/senders",
                            {"senders": "Shop, Alerts"})).status_code == 303
    settings = await admin.settings("shop")
    assert settings.senders == ["Shop", "Alerts"] and settings.default_sender is None
    assert (await post_form(ops_client, base, f"{base}/disable", {})).status_code == 303
    sent = await ops_client.post("/api/send/", json={"number": "79001234560"},
                                 headers={"Authorization": customer.api_key})
    assert sent.json()["error_code"] == "user_disabled"
    assert (await post_form(ops_client, base, f"{base}/frobnicate", {})).status_code == 404


async def test_tariffs_and_spam(ops_client: httpx.AsyncClient, admin: Admin) -> None:
    bad = await post_form(ops_client, "/admin/tariffs", "/admin/tariffs", {
        "plan": "default", "channel": "pigeon", "direction": "RU", "price": "-1"})
    assert bad.status_code == 400 and "Выберите канал" in bad.text
    ok = await post_form(ops_client, "/admin/tariffs", "/admin/tariffs", {
        "plan": "gold", "channel": "sms", "direction": "RU", "price": "2.75"})
    assert ok.status_code == 303
    assert ("gold", "sms", "RU", 275) in await admin.tariffs()
    bad_number = await post_form(ops_client, "/admin/spam", "/admin/spam/add",
                                 {"number": "hello"})
    assert bad_number.status_code == 400 and "Это не номер телефона" in bad_number.text
    no_account = await post_form(ops_client, "/admin/spam", "/admin/spam/add",
                                 {"number": "79001234567", "account": "nobody"})
    assert no_account.status_code == 400 and "Нет такого аккаунта" in no_account.text
    assert await admin.spam() == []
    added = await post_form(ops_client, "/admin/spam", "/admin/spam/add",
                            {"number": "+7 900 123-45-67"})
    assert added.status_code == 303 and await admin.spam() == [(None, "79001234567")]
    removed = await post_form(ops_client, "/admin/spam", "/admin/spam/remove",
                              {"number": "79001234567", "account": ""})
    assert removed.status_code == 303 and await admin.spam() == []


async def test_a_topup_form_tops_up_once(ops_client: httpx.AsyncClient, admin: Admin,
                                         gateway: Gateway) -> None:
    """A double click, a resend after a timeout, two tabs racing: one form, one top-up."""
    customer = await admin.create_account("shop", email="shop@example.com")
    base = f"/admin/accounts/{customer.account.id}"
    form = await _topup_form(ops_client, base)
    first = await ops_client.post(f"{base}/topup", data={**form, "amount": "100"})
    assert first.status_code == 303 and first.headers["location"].endswith("?done=topup")
    again = await ops_client.post(f"{base}/topup", data={**form, "amount": "100"})
    assert again.status_code == 303 and again.headers["location"].endswith("topup_repeat")
    assert "пополнение выполнено один раз" in (await ops_client.get(again.headers["location"])
                                               ).text
    assert (await admin.account("shop")).balance == 5000 + 10000
    racing = await _topup_form(ops_client, base)
    answers = await asyncio.gather(*(ops_client.post(
        f"{base}/topup", data={**racing, "amount": "7"}) for _ in range(5)))
    places = sorted(a.headers["location"].rsplit("=", 1)[1] for a in answers)
    assert places == ["topup"] + ["topup_repeat"] * 4
    assert (await admin.account("shop")).balance == 5000 + 10000 + 700
    async with gateway.db.read() as conn:
        rows = (await conn.execute(select(ledger.c.amount).where(
            ledger.c.account_id == customer.account.id, ledger.c.kind == "topup"))).all()
    assert sorted(r[0] for r in rows) == [700, 5000, 10000]  # test balance, one per form


async def test_a_failed_topup_keeps_its_token_and_strangers_have_none(
        ops_client: httpx.AsyncClient, admin: Admin) -> None:
    customer = await admin.create_account("shop", email="shop@example.com")
    other = await admin.create_account("other", email="other@example.com")
    base = f"/admin/accounts/{customer.account.id}"
    form = await _topup_form(ops_client, base)
    below = await ops_client.post(f"{base}/topup", data={**form, "amount": "-1000"})
    assert below.status_code == 400
    ok = await ops_client.post(f"{base}/topup", data={**form, "amount": "10"})
    assert ok.status_code == 303 and ok.headers["location"].endswith("?done=topup")
    # No token, a made-up one, or another account's form's: nothing moves.
    other_base = f"/admin/accounts/{other.account.id}"
    for once in ("", "made-up", (await _topup_form(ops_client, other_base))["once"]):
        refused = await ops_client.post(f"{base}/topup", data={
            "csrf": form["csrf"], "once": once, "amount": "10"})
        assert refused.status_code == 400 and "Форма устарела" in refused.text
    assert (await admin.account("shop")).balance == 5000 + 1000
    assert (await admin.account("other")).balance == 5000
