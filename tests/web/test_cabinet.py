"""The cabinet over HTTP on both databases: registration and login, CSRF refusal, keys,
settings validation in place, history and detail, and that one account never sees another's."""

from __future__ import annotations

import asyncio
import re

import httpx

from kaskad.api.app import create_app
from kaskad.bootstrap import Gateway
from kaskad.services.admin import Admin
from kaskad.storage import accounts as repo
from tests.web.conftest import csrf_of, new_client, post_form, register


async def test_register_gives_test_balance_key_and_session(
        client: httpx.AsyncClient, admin: Admin) -> None:
    answer = await register(client, "New@Example.com")
    key = re.search(r'id="new-key">(\w+)<', answer.text)
    assert key, answer.text
    assert "kaskad_session" in answer.headers["set-cookie"]
    assert "HttpOnly" in answer.headers["set-cookie"] and "SameSite=lax" in \
        answer.headers["set-cookie"]
    account = await admin.account("new@example.com")
    assert account.balance == 5000 and account.email == "new@example.com"
    overview = await client.get("/cabinet/")
    assert overview.status_code == 200 and "50.00 ₽" in overview.text
    sent = await client.post("/api/send/", json={"number": "79001234560"},
                             headers={"Authorization": key.group(1)})
    assert sent.json()["result"] == "ok"


async def test_register_errors_in_place_and_nothing_written(
        gateway: Gateway, client: httpx.AsyncClient, admin: Admin) -> None:
    bad = await post_form(client, "/cabinet/register", "/cabinet/register", {
        "email": "not-an-email", "password": "short", "password2": "short"})
    assert bad.status_code == 400
    assert "Введите корректный email" in bad.text and "Не меньше 8 символов" in bad.text
    await register(client, "taken@example.com")
    other = new_client(gateway, create_app(gateway, manage_gateway=False))
    async with other:
        again = await post_form(other, "/cabinet/register", "/cabinet/register", {
            "email": "taken@example.com", "password": "12345678", "password2": "12345678"})
    assert again.status_code == 400 and "уже зарегистрирован" in again.text
    assert len(await admin.accounts()) == 1


async def test_login_logout_and_wrong_password(client: httpx.AsyncClient,
                                               admin: Admin) -> None:
    await register(client, "a@example.com", "password-a")
    logout = await post_form(client, "/cabinet/", "/cabinet/logout", {})
    assert logout.status_code == 303
    assert (await client.get("/cabinet/")).headers["location"] == "/cabinet/login"
    wrong = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": "a@example.com", "password": "password-b"})
    assert wrong.status_code == 400 and "Неверный email или пароль" in wrong.text
    ok = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": "A@example.com", "password": "password-a"})
    assert ok.status_code == 303 and ok.headers["location"] == "/cabinet/"
    assert (await client.get("/cabinet/")).status_code == 200
    await admin.set_disabled("a@example.com", True)
    assert (await client.get("/cabinet/")).status_code == 303  # a disabled account is out


async def test_every_post_needs_the_csrf_token(client: httpx.AsyncClient,
                                               admin: Admin) -> None:
    login = await client.post("/cabinet/register", data={
        "email": "x@example.com", "password": "12345678", "password2": "12345678"})
    assert login.status_code == 403 and "Форма устарела" in login.text
    assert await admin.accounts() == []
    await register(client, "x@example.com")
    for action, fields in (("/cabinet/keys", {"name": "k"}),
                           ("/cabinet/settings", {"inn": "7707083893"}),
                           ("/cabinet/password", {"current_password": "correct horse"}),
                           ("/cabinet/logout", {})):
        for token in (None, "forged"):
            data = fields if token is None else {**fields, "csrf": token}
            refused = await client.post(action, data=data)
            assert refused.status_code == 403, (action, refused.text)
    assert len(await admin.keys("x@example.com")) == 1
    assert (await admin.settings("x@example.com")).inn is None


async def test_keys_create_once_and_revoke_only_own(gateway: Gateway, client: httpx.AsyncClient,
                                                   admin: Admin) -> None:
    await register(client, "a@example.com")
    created = await post_form(client, "/cabinet/keys", "/cabinet/keys", {"name": "backend"})
    key = re.search(r'id="new-key">(\w+)<', created.text)
    assert created.status_code == 200 and key
    page = (await client.get("/cabinet/keys")).text
    assert key.group(1) not in page and "backend" in page  # shown once
    b = new_client(gateway, create_app(gateway, manage_gateway=False))
    async with b:
        await register(b, "b@example.com")
        a_keys = await admin.keys("a@example.com")
        stolen = await post_form(b, "/cabinet/keys", f"/cabinet/keys/{a_keys[-1]['id']}/revoke",
                                 {})
        assert stolen.status_code == 404
    assert all(k["revoked_at"] is None for k in await admin.keys("a@example.com"))
    own = await post_form(client, "/cabinet/keys", f"/cabinet/keys/{a_keys[-1]['id']}/revoke",
                          {})
    assert own.status_code == 303
    sent = await client.post("/api/send/", json={"number": "79001234560"},
                             headers={"Authorization": key.group(1)})
    assert sent.json()["error_code"] == "authorisation_failed"


async def test_settings_validate_in_place_and_save(client: httpx.AsyncClient,
                                                   admin: Admin) -> None:
    await register(client, "s@example.com")
    await admin.settings("s@example.com", {"senders": "Shop,Alerts"})
    form = {"incoming_call_url": "https://hooks.example/call", "status_url": "",
            "default_resending": "sms", "sms_codes_to_telegram": "on",
            "code_length_min": "4", "code_length_max": "6", "default_sender": "Shop",
            "company_name": "ООО Ромашка", "inn": "12345", "kpp": "12345678", "address": "",
            "lang": "ru"}
    bad = await post_form(client, "/cabinet/settings", "/cabinet/settings", form)
    assert bad.status_code == 400
    assert "ИНН — 10 или 12 цифр" in bad.text and "КПП — 9 цифр" in bad.text
    assert 'value="ООО Ромашка"' in bad.text  # what was typed comes back
    assert (await admin.settings("s@example.com")).company_name is None  # nothing written
    worse = await post_form(client, "/cabinet/settings", "/cabinet/settings", {
        **form, "inn": "7707083893", "kpp": "773601001", "default_sender": "NotApproved",
        "code_length_min": "7", "incoming_call_url": "ftp://x"})
    assert "Выберите одно из одобренных имён" in worse.text
    assert "Нужен адрес http:// или https://" in worse.text
    ok = await post_form(client, "/cabinet/settings", "/cabinet/settings", {
        **form, "inn": "7707083893", "kpp": "773601001", "lang": "en"})
    assert ok.status_code == 303
    saved = await admin.settings("s@example.com")
    assert (saved.inn, saved.kpp, saved.default_sender, saved.default_resending,
            saved.sms_codes_to_telegram, saved.code_length_max, saved.lang) == (
        "7707083893", "773601001", "Shop", "sms", True, 6, "en")
    page = await client.get(ok.headers["location"])
    assert "Saved" in page.text  # the cabinet follows the chosen language
    assert "senders" not in form  # customers cannot approve names: the form has no field


async def test_default_resending_applies_to_requests_without_one(
        client: httpx.AsyncClient, admin: Admin) -> None:
    answer = await register(client, "r@example.com")
    key = re.search(r'id="new-key">(\w+)<', answer.text).group(1)  # type: ignore[union-attr]
    await admin.settings("r@example.com", {"default_resending": "sms"})
    sent = (await client.post("/api/send/", json={"number": "79001234564"},
                              headers={"Authorization": key})).json()
    assert sent["resend"] == "sms", sent


async def test_history_detail_and_isolation(gateway: Gateway, client: httpx.AsyncClient,
                                            admin: Admin) -> None:
    answer = await register(client, "a@example.com")
    key = re.search(r'id="new-key">(\w+)<', answer.text).group(1)  # type: ignore[union-attr]
    sent = (await client.post("/api/send/", json={
        "number": "79001234564", "resending": "sms",
        "callback_url": "http://127.0.0.1:9/none"},
        headers={"Authorization": key})).json()
    rid = sent["request_id"]
    await gateway.await_state(rid, lambda v: v.final, 10)
    history = await client.get("/cabinet/history", params={"number": "1234564"})
    assert rid in history.text and "Доставлено SMS" in history.text
    none = await client.get("/cabinet/history", params={"number": "79990000000"})
    assert rid not in none.text
    bad_date = await client.get("/cabinet/history", params={"from": "yesterday"})
    assert bad_date.status_code == 200 and "ГГГГ-ММ-ДД" in bad_date.text
    detail = await client.get(f"/cabinet/history/{rid}")
    assert detail.status_code == 200
    assert "telegram" in detail.text.lower() and "rejected_permanent" in detail.text
    assert "Списание" in detail.text and "3.50" in detail.text
    assert "http://127.0.0.1:9/none" in detail.text  # the callback
    overview = await client.get("/cabinet/")
    assert '"SMS"' in overview.text  # the chart's series
    b = new_client(gateway, create_app(gateway, manage_gateway=False))
    async with b:
        await register(b, "b@example.com")
        assert (await b.get(f"/cabinet/history/{rid}")).status_code == 404
        assert rid not in (await b.get("/cabinet/history")).text
        assert "1234564" not in (await b.get("/cabinet/history")).text
    assert (await client.get("/cabinet/history/nonexistent")).status_code == 404
    assert (await client.get("/cabinet/history/..%2F..")).status_code == 404


async def test_password_change_ends_other_sessions(gateway: Gateway, client: httpx.AsyncClient,
                                                   admin: Admin) -> None:
    await register(client, "p@example.com", "old-password")
    other = new_client(gateway, create_app(gateway, manage_gateway=False))
    async with other:
        await post_form(other, "/cabinet/login", "/cabinet/login", {
            "email": "p@example.com", "password": "old-password"})
        assert (await other.get("/cabinet/")).status_code == 200
        wrong = await post_form(client, "/cabinet/password", "/cabinet/password", {
            "current_password": "nope", "new_password": "new-password",
            "password2": "new-password"})
        assert wrong.status_code == 400 and "Неверный пароль" in wrong.text
        ok = await post_form(client, "/cabinet/password", "/cabinet/password", {
            "current_password": "old-password", "new_password": "new-password",
            "password2": "new-password"})
        assert ok.status_code == 200 and "Пароль изменён" in ok.text
        assert (await other.get("/cabinet/")).status_code == 303
    assert (await client.get("/cabinet/")).status_code == 200


async def test_english_and_error_pages(client: httpx.AsyncClient) -> None:
    page = await client.get("/cabinet/login?lang=en")
    assert "Log in" in page.text and "kaskad_lang=en" in page.headers["set-cookie"]
    assert "Log in" in (await client.get("/cabinet/register")).text  # the cookie remembers
    missing = await client.get("/cabinet/no-such-page")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert 'name="viewport"' in page.text


async def test_concurrent_registrations_of_one_email(gateway: Gateway,
                                                     admin: Admin) -> None:
    app = create_app(gateway, manage_gateway=False)
    clients = [new_client(gateway, app) for _ in range(4)]
    tokens = [csrf_of((await c.get("/cabinet/register")).text) for c in clients]
    answers = await asyncio.gather(*(c.post("/cabinet/register", data={
        "csrf": t, "email": "same@example.com", "password": "12345678",
        "password2": "12345678"}) for c, t in zip(clients, tokens, strict=True)))
    for c in clients:
        await c.aclose()
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    async with gateway.db.read() as conn:
        assert len(await repo.list_accounts(conn)) == 1


async def test_login_is_throttled_after_five_failures(gateway: Gateway,
                                                      client: httpx.AsyncClient) -> None:
    """Five wrong passwords for one email within ten minutes: even the right one is refused
    (429, in both languages) until the window passes; another address is refused too."""
    await register(client, "victim@example.com", "right-password")
    await post_form(client, "/cabinet/", "/cabinet/logout", {})
    for _ in range(5):
        wrong = await post_form(client, "/cabinet/login", "/cabinet/login", {
            "email": "victim@example.com", "password": "guess"})
        assert wrong.status_code == 400
    refused = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": "Victim@example.com", "password": "right-password"})
    assert refused.status_code == 429 and "kaskad_session" not in \
        refused.headers.get("set-cookie", "")
    assert "Слишком много неудачных попыток входа. Попробуйте снова через 10 мин." in \
        refused.text and int(refused.headers["retry-after"]) == 600
    english = await post_form(client, "/cabinet/login?lang=en", "/cabinet/login", {
        "email": "victim@example.com", "password": "right-password"})
    assert english.status_code == 429 and "Too many failed logins" in english.text
    app = client._transport.app  # type: ignore[attr-defined]
    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(
        app=app, client=("192.0.2.7", 1234)), base_url="http://kaskad.test")
    async with elsewhere:
        also = await post_form(elsewhere, "/cabinet/login", "/cabinet/login", {
            "email": "victim@example.com", "password": "right-password"})
        assert also.status_code == 429
        other = await post_form(elsewhere, "/cabinet/login", "/cabinet/login", {
            "email": "other@example.com", "password": "guess"})
        assert other.status_code == 400  # checked: the address itself is not refused
    real_clock = gateway.clock
    gateway.clock = lambda: real_clock() + 601
    ok = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": "victim@example.com", "password": "right-password"})
    assert ok.status_code == 303


async def test_login_throttle_counts_per_address_across_emails(
        client: httpx.AsyncClient) -> None:
    await register(client, "real@example.com", "right-password")
    await post_form(client, "/cabinet/", "/cabinet/logout", {})
    for n in range(5):
        await post_form(client, "/cabinet/login", "/cabinet/login", {
            "email": f"guess{n}@example.com", "password": "guess"})
    refused = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": "real@example.com", "password": "right-password"})
    assert refused.status_code == 429


async def test_password_change_is_throttled_like_the_login(client: httpx.AsyncClient) -> None:
    """A borrowed session cannot guess the current password any faster than the login can."""
    await register(client, "t@example.com", "old-password")
    for _ in range(5):
        wrong = await post_form(client, "/cabinet/password", "/cabinet/password", {
            "current_password": "guess", "new_password": "new-password",
            "password2": "new-password"})
        assert wrong.status_code == 400
    refused = await post_form(client, "/cabinet/password", "/cabinet/password", {
        "current_password": "old-password", "new_password": "new-password",
        "password2": "new-password"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Слишком много попыток с неверным паролем" in refused.text
    assert (await post_form(client, "/cabinet/", "/cabinet/logout", {})).status_code == 303
    login = await post_form(client, "/cabinet/login", "/cabinet/login", {
        "email": "t@example.com", "password": "old-password"})
    assert login.status_code == 429  # the same limit guards the login
