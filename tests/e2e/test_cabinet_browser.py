"""The cabinet in a real browser (Debian's headless Chromium, driven by Playwright) against
`kaskad demo`: register, log in, create a key, send codes with it through the API, see them in
the history and the charts, change settings (a bad INN is refused in place), and the operator
tops the account up. Screenshots go to $KASKAD_ARTIFACTS (default test-artifacts/)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_demo import running_demo

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "e2e-password-1"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:  # a missing browser is a failure of the setup, never a skip
        pytest.fail("Chromium is required for the browser tests: scripts/install --dev "
                    "installs Debian's chromium", pytrace=False)
    return found


@pytest.fixture
def artifacts(backend: str) -> Path:
    root = Path(os.environ.get("KASKAD_ARTIFACTS") or REPO / "test-artifacts")
    path = root / "cabinet" / backend
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def demo(backend: str, db_url: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    async with running_demo(backend, db_url, tmp_path,
                            KASKAD_TELEGRAM_TIMEOUT_S="1") as (port, banner, _env):
        cabinet = re.search(r"^Cabinet: (\S+)\s+log in as (\S+), password (\S+)$", banner, re.M)
        admin = re.search(r"^Admin: +(\S+)\s+log in as (\S+), password (\S+)$", banner, re.M)
        assert cabinet and admin, banner
        yield {"base": f"http://127.0.0.1:{port}", "cabinet": cabinet.group(1),
               "admin": admin.group(1), "admin_email": admin.group(2),
               "admin_password": admin.group(3), "demo_email": cabinet.group(2),
               "demo_password": cabinet.group(3)}

async def _final(client: httpx.AsyncClient, key: str, request_id: str) -> dict[str, Any]:
    async def loop() -> dict[str, Any]:
        while True:
            state = (await client.get("/api/status/", params={"request_id": request_id},
                                      headers={"Authorization": key})).json()
            if state["state"] in ("delivered", "sms", "voice", "not_delivered"):
                return dict(state)
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(loop(), 30)


async def test_cabinet_in_a_browser(demo: dict[str, str], artifacts: Path) -> None:
    from playwright.async_api import async_playwright, expect

    executable = _chromium()
    base = demo["base"]
    email = "e2e@example.com"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable,
                                           args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                            base_url=base)
            page = await ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # Register (Russian by default), then log out and back in.
            await page.goto(demo["cabinet"] + "register")
            await page.fill("input[name=email]", email)
            await page.fill("input[name=password]", PASSWORD)
            await page.fill("input[name=password2]", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("#new-key")).to_have_text(re.compile(r"^\w{32}$"))
            await page.screenshot(path=artifacts / "01-registered.png", full_page=True)
            await page.click("text=Выйти")
            await expect(page).to_have_url(re.compile(r"/cabinet/login$"))
            await page.fill("input[name=email]", email)
            await page.fill("input[name=password]", "wrong-password")
            await page.click("button[type=submit]")
            await expect(page.locator(".alert.bad")).to_contain_text("Неверный email")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("#available")).to_have_text("50.00 ₽")

            # A key of our own, shown once.
            await page.click("nav >> text=API-ключи")
            await page.fill("input[name=name]", "e2e backend")
            await page.click("#create-key")
            key = (await page.locator("#new-key").inner_text()).strip()
            assert re.fullmatch(r"\w{32}", key)
            await page.screenshot(path=artifacts / "02-key.png", full_page=True)

            # Codes through the API with it: one by Telegram, one falling back to SMS.
            async with httpx.AsyncClient(base_url=base, timeout=10) as api:
                sent = []
                for number, resending in (("79001234560", "stop"), ("79001234564", "sms")):
                    answer = (await api.post("/api/send/", json={
                        "number": number, "resending": resending},
                        headers={"Authorization": key})).json()
                    assert answer["result"] == "ok", answer
                    sent.append(await _final(api, key, answer["request_id"]))
            assert [s["state"] for s in sent] == ["delivered", "sms"]

            # History, filtered, and a detail page with its timeline.
            await page.goto("/cabinet/history")
            await expect(page.locator("table.history tbody tr")).to_have_count(2)
            await page.fill("input[name=number]", "1234564")
            await page.click("form.filters button[type=submit]")
            await expect(page.locator("table.history tbody tr")).to_have_count(1)
            await expect(page.locator("table.history")).to_contain_text("Доставлено SMS")
            await page.screenshot(path=artifacts / "03-history.png", full_page=True)
            await page.click("table.history tbody tr a")
            await expect(page.locator("h1")).to_contain_text(sent[1]["request_id"])
            await expect(page.locator(".timeline")).to_contain_text("rejected_permanent")
            await expect(page.locator("main")).to_contain_text("Списание")
            await page.screenshot(path=artifacts / "04-detail.png", full_page=True)

            # The charts: Chart.js drew both codes, by channel.
            await page.goto("/cabinet/")
            await expect(page.locator("body[data-charts-ready='1']")).to_have_count(1)
            drawn = await page.evaluate(
                "() => Object.fromEntries(document.getElementById('chart-per-day').chart"
                ".data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + b, 0)]))")
            assert drawn == {"Telegram": 1, "SMS": 1}, drawn
            await expect(page.locator("#total")).to_have_text("2")
            await expect(page.locator("#rate")).to_have_text("100.0 %")
            await expect(page.locator("#saved")).to_have_text("2.00 ₽")  # 3.50 - 1.50
            await expect(page.locator("#available")).to_have_text("45.00 ₽")
            await page.screenshot(path=artifacts / "05-overview.png", full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})  # a phone
            await page.screenshot(path=artifacts / "06-overview-phone.png", full_page=True)
            wide = await page.evaluate("() => document.documentElement.scrollWidth")
            assert wide <= 390, f"the page scrolls sideways on a phone ({wide}px)"
            await page.set_viewport_size({"width": 1280, "height": 900})

            # Settings: a bad INN is refused beside its field; a good one is saved.
            await page.goto("/cabinet/settings")
            await page.fill("input[name=company_name]", "ООО «Каскад-Тест»")
            await page.fill("input[name=inn]", "12345")
            await page.select_option("select[name=default_resending]", "sms")
            await page.click("#save-settings")
            await expect(page.locator("#err-inn")).to_have_text("ИНН — 10 или 12 цифр")
            await expect(page.locator("input[name=company_name]")).to_have_value(
                "ООО «Каскад-Тест»")
            await page.screenshot(path=artifacts / "07-settings-error.png", full_page=True)
            await page.fill("input[name=inn]", "7707083893")
            await page.fill("input[name=kpp]", "773601001")
            await page.select_option("select[name=lang]", "en")
            await page.click("#save-settings")
            await expect(page.locator("#saved")).to_have_text("Saved")
            await expect(page.locator("input[name=inn]")).to_have_value("7707083893")
            await page.screenshot(path=artifacts / "08-settings-saved-en.png", full_page=True)

            # The operator tops the account up from the admin pages.
            admin_ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                                  base_url=base)
            ops = await admin_ctx.new_page()
            await ops.goto(demo["admin"])
            await expect(ops).to_have_url(re.compile(r"/cabinet/login$"))
            await ops.fill("input[name=email]", demo["admin_email"])
            await ops.fill("input[name=password]", demo["admin_password"])
            await ops.click("button[type=submit]")
            await ops.goto(demo["admin"])
            await ops.click(f"text={email}")
            await ops.fill("#topup-form input[name=amount]", "100")
            await ops.click("#topup-form button[type=submit]")
            await expect(ops.locator("#balance")).to_have_text("145.00 ₽")
            await ops.screenshot(path=artifacts / "09-admin-topup.png", full_page=True)
            await ops.goto("/admin/channels")
            await expect(ops.locator("#live .bound").first).to_have_text("подключён")
            await ops.screenshot(path=artifacts / "10-admin-channels.png", full_page=True)

            # The customer sees the money; the customer cannot open the admin pages.
            await page.goto("/cabinet/")
            await expect(page.locator("#available")).to_have_text("145.00 ₽")
            denied = await page.goto("/admin/")
            assert denied is not None and denied.status == 403
            assert errors == [], errors
        finally:
            await browser.close()
