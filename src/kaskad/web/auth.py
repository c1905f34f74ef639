"""Registration, login, logout and password change for the cabinet (and the admin pages,
whose operators log in here too)."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.domain.errors import BadRequest
from kaskad.storage import accounts as repo
from kaskad.storage import web_sessions
from kaskad.web.core import SESSION_COOKIE, Web, redirect, token_hash

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_hasher = PasswordHasher()
# Checked against when the email is unknown, so a wrong email costs the same time as a wrong
# password (no account enumeration by timing).
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def password_errors(password: str, again: str | None = None) -> dict[str, str]:
    if len(password) < 8:
        return {"password": "err.password_short"}
    if len(password) > 200:
        return {"password": "err.password_long"}
    if again is not None and again != password:
        return {"password2": "err.password_mismatch"}
    return {}


def build_router(web: Web) -> APIRouter:
    router = APIRouter(prefix="/cabinet", include_in_schema=False)

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        if await web.session(request) is not None:
            return redirect("/cabinet/")
        return await web.render(request, "login.html", {"errors": {}, "email": ""})

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = await web.form(request, None)
        email = fields.get("email", "").strip()[:254]
        password = fields.get("password", "")[:200]
        keys = web.throttle.keys(email, request.client.host if request.client else None)
        refused = await _throttled(web, request, keys, "login.html", "login.throttled",
                                   {"email": email})
        if refused is not None:  # refused before the password is even hashed
            return refused
        async with web.gw.db.read() as conn:
            found = await repo.login_of(conn, email) if email else None
        ok = await asyncio.to_thread(_verify, found[2] if found else None, password)
        if found is None or not ok:
            web.throttle.failed(keys, web.now_ms())
            return await web.render(request, "login.html", {
                "errors": {"form": "login.bad"}, "email": email}, status=400)
        web.throttle.succeeded(email)
        if found[1]:
            return await web.render(request, "login.html", {
                "errors": {"form": "login.disabled"}, "email": email}, status=403)
        response = redirect("/cabinet/")
        _, token = await web.start_session(request, found[0])
        web.set_session_cookie(request, response, token)
        return response

    @router.get("/register")
    async def register_form(request: Request) -> Response:
        return await web.render(request, "register.html", {"errors": {}, "email": ""})

    @router.post("/register")
    async def register(request: Request) -> Response:
        fields = await web.form(request, None)
        email = fields.get("email", "").strip().lower()
        password = fields.get("password", "")
        errors = {} if EMAIL.match(email) and len(email) <= 254 else {"email": "err.email"}
        errors |= password_errors(password, fields.get("password2", ""))
        if not errors:
            async with web.gw.db.read() as conn:
                if await repo.login_of(conn, email) is not None:
                    errors["email"] = "register.taken"
        if errors:
            return await web.render(request, "register.html", {
                "errors": errors, "email": email}, status=400)
        hashed = await asyncio.to_thread(_hasher.hash, password)
        try:
            created = await web.admin.create_account(email, email=email, password_hash=hashed)
        except BadRequest:  # the same email registered a moment ago
            return await web.render(request, "register.html", {
                "errors": {"email": "register.taken"}, "email": email}, status=400)
        session, token = await web.start_session(request, created.account.id)
        response = await web.render(request, "welcome.html", {"key": created.api_key},
                                    session=session)
        web.set_session_cookie(request, response, token)
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        await web.form(request, await web.user(request))
        response = redirect("/cabinet/login")
        await web.end_session(request, response)
        return response

    @router.get("/password")
    async def password_form(request: Request) -> Response:
        session = await web.user(request)
        return await web.render(request, "password.html", {"errors": {}, "done": False},
                                session=session)

    @router.post("/password")
    async def change_password(request: Request) -> Response:
        session = await web.user(request)
        fields = await web.form(request, session)
        # The current password is guessed here as at the login (a borrowed session): both
        # count against the same limit.
        keys = web.throttle.keys(session.email or "",
                                 request.client.host if request.client else None)
        refused = await _throttled(web, request, keys, "password.html", "password.throttled",
                                   {"done": False}, session=session)
        if refused is not None:
            return refused
        new = fields.get("new_password", "")
        errors = {("new_" + k if k == "password" else k): v
                  for k, v in password_errors(new, fields.get("password2", "")).items()}
        async with web.gw.db.read() as conn:
            found = await repo.login_of(conn, session.email or "")
        current_ok = await asyncio.to_thread(_verify, found[2] if found else None,
                                             fields.get("current_password", "")[:200])
        if not current_ok:
            web.throttle.failed(keys, web.now_ms())
            errors["current_password"] = "err.password_wrong"
        if errors:
            return await web.render(request, "password.html", {
                "errors": errors, "done": False}, status=400, session=session)
        hashed = await asyncio.to_thread(_hasher.hash, new)
        async with web.gw.db.write() as conn:
            await repo.set_password_hash(conn, session.account_id, hashed)
            await web_sessions.remove_others(conn, session.account_id,
                                             token_hash(request.cookies[SESSION_COOKIE]))
        return await web.render(request, "password.html", {"errors": {}, "done": True},
                                session=session)

    return router


async def _throttled(web: Web, request: Request, keys: list[str], template: str,
                     message: str, context: dict[str, Any], **render: Any) -> Response | None:
    """The page that refuses a password attempt while its keys are throttled (429 with
    Retry-After), or None to let it through."""
    wait_ms = web.throttle.wait_ms(keys, web.now_ms())
    if not wait_ms:
        return None
    refused: Response = await web.render(request, template, {
        **context, "errors": {"form": message},
        "values": {"minutes": math.ceil(wait_ms / 60_000)}}, status=429, **render)
    refused.headers["Retry-After"] = str(math.ceil(wait_ms / 1000))
    return refused
