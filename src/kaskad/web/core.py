"""What every page shares: templates, the language, the logged-in session, CSRF checks and
error pages. Routers (cabinet, admin) get one `Web` and stay short."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kaskad.bootstrap import Gateway
from kaskad.domain.clock import to_ms
from kaskad.domain.login_throttle import LoginThrottle
from kaskad.domain.money import format_rub
from kaskad.services.admin import Admin
from kaskad.storage import web_sessions
from kaskad.storage.web_sessions import SessionRow
from kaskad.web.i18n import pick_lang, text

SESSION_COOKIE = "kaskad_session"
ANON_CSRF_COOKIE = "kaskad_csrf"  # login and registration forms: double-submit token
LANG_COOKIE = "kaskad_lang"
SESSION_DAYS = 14
LOGIN_PATH = "/cabinet/login"


class WebError(Exception):
    """An error page with a status and a message key (never a traceback)."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status = status
        self.key = key


class LoginRequired(Exception):
    """The page needs a logged-in user: the browser goes to the login form."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Web:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.admin = Admin(gw.db, test_balance_kop=gw.settings.test_balance_kop,
                           default_directions=gw.settings.default_direction_list,
                           clock=gw.clock)
        self.tz = ZoneInfo(gw.settings.timezone)
        self.throttle = LoginThrottle()  # per process: see domain/login_throttle.py
        self.env = Environment(loader=PackageLoader("kaskad.web", "templates"),
                               autoescape=select_autoescape(["html"]), enable_async=False)
        self.env.filters["rub"] = format_rub
        self.env.filters["when"] = self.when

    def now_ms(self) -> int:
        return to_ms(self.gw.clock())

    def when(self, ms: int | None) -> str:
        """Times in the gateway's time zone, as people read them."""
        if ms is None:
            return "—"
        return datetime.fromtimestamp(ms / 1000, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    # ----------------------------------------------------------------- sessions

    async def session(self, request: Request) -> SessionRow | None:
        if hasattr(request.state, "web_session"):
            cached: SessionRow | None = request.state.web_session
            return cached
        token = request.cookies.get(SESSION_COOKIE)
        found = None
        if token and len(token) < 200:
            async with self.gw.db.read() as conn:
                found = await web_sessions.find(conn, token_hash(token), self.now_ms())
            if found is not None and found.disabled:
                found = None
        request.state.web_session = found
        return found

    async def user(self, request: Request) -> SessionRow:
        found = await self.session(request)
        if found is None:
            raise LoginRequired()
        return found

    async def operator(self, request: Request) -> SessionRow:
        found = await self.user(request)
        if not found.is_admin:
            raise WebError(403, "error.403")
        return found

    async def start_session(self, request: Request, account_id: int) -> tuple[SessionRow, str]:
        """A fresh token on every login (no session fixation); the caller sets its cookie
        on the answer with `set_session_cookie`."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.now_ms()
        async with self.gw.db.write() as conn:
            await web_sessions.create(conn, token_hash(token), account_id, csrf, now,
                                      now + SESSION_DAYS * 86_400_000)
            found = await web_sessions.find(conn, token_hash(token), now)
        assert found is not None
        request.state.web_session = found
        return found, token

    def set_session_cookie(self, request: Request, response: Response, token: str) -> None:
        self._cookie(request, response, SESSION_COOKIE, token, SESSION_DAYS * 86_400)

    async def end_session(self, request: Request, response: Response) -> None:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            async with self.gw.db.write() as conn:
                await web_sessions.remove(conn, token_hash(token))
        response.delete_cookie(SESSION_COOKIE, path="/")

    def _cookie(self, request: Request, response: Response, name: str, value: str,
                max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")

    # ----------------------------------------------------------------- forms and CSRF

    async def form(self, request: Request, session: SessionRow | None) -> dict[str, str]:
        """The posted fields, once the CSRF token is checked: the session's own, or for the
        anonymous forms the double-submit cookie's."""
        try:
            raw = await request.form()
        except Exception as exc:  # a malformed body is the sender's fault, not a 500
            raise WebError(400, "error.csrf") from exc
        fields = {k: v for k, v in raw.items() if isinstance(v, str)}
        sent = fields.pop("csrf", "") or request.headers.get("x-csrf-token", "")
        expected = session.csrf if session is not None else \
            request.cookies.get(ANON_CSRF_COOKIE, "")
        if not expected or not sent or not hmac.compare_digest(sent, expected):
            raise WebError(403, "error.csrf")
        return fields

    def anon_csrf(self, request: Request) -> str:
        return request.cookies.get(ANON_CSRF_COOKIE) or secrets.token_urlsafe(32)

    # ----------------------------------------------------------------- rendering

    async def lang(self, request: Request, session: SessionRow | None) -> str:
        own = None
        if session is not None and not request.query_params.get("lang") \
                and not request.cookies.get(LANG_COOKIE):
            own = (await self.gw.account_settings.get(session.account_id)).lang
        return pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                         own)

    async def render(self, request: Request, template: str, context: dict[str, Any],
                     *, status: int = 200, session: SessionRow | None = None) -> HTMLResponse:
        lang = await self.lang(request, session)
        csrf = session.csrf if session is not None else self.anon_csrf(request)
        html = self.env.get_template(template).render(
            **context, lang=lang, session=session, csrf=csrf, path=request.url.path,
            t=lambda key, **kw: text(key, lang, **kw))
        response = HTMLResponse(html, status_code=status)
        if session is None and request.cookies.get(ANON_CSRF_COOKIE) != csrf:
            self._cookie(request, response, ANON_CSRF_COOKIE, csrf, 86_400)
        chosen = request.query_params.get("lang")
        if chosen in ("ru", "en") and chosen != request.cookies.get(LANG_COOKIE):
            self._cookie(request, response, LANG_COOKIE, chosen, 365 * 86_400)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def error_page(self, request: Request, status: int, key: str) -> Response:
        if status == 401 or key == "login":
            return RedirectResponse(LOGIN_PATH, status_code=303)
        try:
            session = await self.session(request)
        except Exception:  # the database is what failed: still answer with a page
            session = None
        try:
            return await self.render(request, "error.html", {"status": status, "key": key},
                                     status=status, session=session)
        except Exception:
            return HTMLResponse("<h1>kaskad</h1><p>Error / Ошибка</p>", status_code=status)


def redirect(url: str) -> RedirectResponse:
    """POST-redirect-GET: a reload never posts a form twice."""
    return RedirectResponse(url, status_code=303)
