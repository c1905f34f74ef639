"""Helpers for driving the cabinet over HTTP like a browser: forms with their CSRF token."""

from __future__ import annotations

import re

import httpx
import pytest

from kaskad.bootstrap import Gateway
from kaskad.services.admin import Admin

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


async def post_form(client: httpx.AsyncClient, page: str, action: str,
                    fields: dict[str, str]) -> httpx.Response:
    """GET the page (for its form's token), then POST the form, as a browser would."""
    token = csrf_of((await client.get(page)).text)
    return await client.post(action, data={"csrf": token, **fields})


async def register(client: httpx.AsyncClient, email: str,
                   password: str = "correct horse") -> httpx.Response:
    answer = await post_form(client, "/cabinet/register", "/cabinet/register", {
        "email": email, "password": password, "password2": password})
    assert answer.status_code == 200, answer.text
    return answer


def new_client(gateway: Gateway, app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                             base_url="http://kaskad.test")


@pytest.fixture
async def operator(admin: Admin) -> tuple[str, str]:
    """An admin login (email, password)."""
    await admin.create_account("ops", email="ops@kaskad.test")
    await admin.set_password("ops", "operator-pass")
    await admin.set_admin("ops", True)
    return "ops@kaskad.test", "operator-pass"
