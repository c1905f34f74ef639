"""The operator's pages over HTTP on both databases: only admins reach them; their forms
validate in place and change what they say."""

from __future__ import annotations

import re

import httpx
import pytest

from kaskad.services.admin import Admin
from tests.web.conftest import post_form, register

PAGES = ("/admin/", "/admin/tariffs", "/admin/channels", "/admin/spam", "/admin/accounts/1")


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
    bad = await post_form(ops_client, base + "?lang=en", f"{base}/topup", {"amount": "lots"})
    assert "Roubles, e.g. 100 or 12.50" in bad.text and "Please fix the errors" in bad.text
    english = await ops_client.get(f"{base}?done=plan")
    assert "The tariff plan was set" in english.text
    forged = await ops_client.get(f"{base}?done=<script>")
    assert "<script>" not in forged.text and 'id="done"' not in forged.text


async def test_topup_plan_senders_disable(ops_client: httpx.AsyncClient, admin: Admin) -> None:
    customer = await admin.create_account("shop", email="shop@example.com")
    base = f"/admin/accounts/{customer.account.id}"
    bad = await post_form(ops_client, base, f"{base}/topup", {"amount": "lots"})
    assert bad.status_code == 400 and "Сумма в рублях" in bad.text
    below = await post_form(ops_client, base, f"{base}/topup", {"amount": "-100"})
    assert below.status_code == 400 and "ниже нуля" in below.text
    assert (await admin.account("shop")).balance == 5000
    ok = await post_form(ops_client, base, f"{base}/topup", {"amount": "150.50"})
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
