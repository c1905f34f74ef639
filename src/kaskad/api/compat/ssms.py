"""The ssms-family HTTP API at the server root (spec/ssms-api.md), translated onto services.

Existing clients send GET or POST (urlencoded, multipart, or parameters in the query with an
empty body) to `/` with `method=...`; every answer is HTTP 200 with the
`{"response": {"msg": ..., "data": ...}}` envelope, XML unless `format=json`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import structlog
from starlette.requests import Request

from kaskad.api.forms import parse_form
from kaskad.api.seed import read_body
from kaskad.bootstrap import Gateway
from kaskad.domain import ssms
from kaskad.domain.account_settings import AccountSettings
from kaskad.domain.channels import ChannelName
from kaskad.domain.clock import seed_date, to_ms
from kaskad.domain.errors import AuthFailed, BadRequest, KaskadError
from kaskad.domain.login_throttle import LoginThrottle
from kaskad.domain.money import format_rub
from kaskad.services.auth import PasswordAuth
from kaskad.services.messages import get_message, message_state
from kaskad.services.send_code import parse_callback_url
from kaskad.services.send_sms import SmsRequest
from kaskad.services.wait_call import PoolExhausted, WaitRequest
from kaskad.storage import accounts as repo
from kaskad.storage import web_sessions as sessions
from kaskad.storage.verifications import Verification

log = structlog.get_logger(__name__)

Params = Mapping[str, str]
Handler = Callable[[int, Params], Awaitable[Any]]
JSON_TYPE = b"application/json; charset=utf-8"
XML_TYPE = b"application/xml; charset=utf-8"


class SsmsApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.passwords = PasswordAuth(gw.db, gw.clock, gw.settings.auth_cache_ttl_s)
        self.session_idle_s = gw.settings.ssms_session_idle_s
        self.throttle = LoginThrottle()
        self._methods: dict[str, Handler] = {
            "push_msg": self.push_msg, "get_msg_report": self.get_msg_report,
            "get_profile": self.get_profile, "get_prices": self.get_prices,
            "wait_call": self.wait_call, "logout": self.logout,
        }
        self._latency = gw.metrics.api_latency.labels("ssms")
        self._results = gw.metrics.api_results

    async def answer(self, params: Params, cookies: Mapping[str, str],
                     client: str | None = None) -> tuple[bytes, bytes]:
        """(content type, body) for one call; never raises for a client's mistake. `client`
        is the caller's address (failed logins are throttled per email and per address)."""
        started = time.perf_counter()
        try:
            payload = ssms.envelope(ssms.OK, await self._call(params, cookies, client))
            result = "ok"
        except KaskadError as exc:
            code = ssms.err_code_for(exc)
            payload, result = ssms.envelope(code, None), str(code)
        self._results.inc("ssms", result)
        self._latency.observe(time.perf_counter() - started)
        return render(params, payload)

    async def _call(self, params: Params, cookies: Mapping[str, str],
                    client: str | None) -> Any:
        method = params.get("method", "").strip().lower()
        if not method:
            raise ssms.SsmsError(ssms.MISSING_PARAMS, "method is required")
        if method == "login":
            return await self.login(params, client)
        handler = self._methods.get(method)
        if handler is None:
            raise ssms.SsmsError(ssms.UNKNOWN_METHOD, f"unknown method {method!r}")
        account_id = await self.authenticate(params, cookies, client)
        if "sid" not in params and cookies.get("sid"):
            params = {**params, "sid": cookies["sid"]}  # logout by cookie, too
        return await handler(account_id, params)

    # ------------------------------------------------------------------ authentication

    async def authenticate(self, params: Params, cookies: Mapping[str, str],
                           client: str | None = None) -> int:
        """A key wins over a login; then email + password; then a session id."""
        key = params.get("key") or params.get("api_key")
        if key:
            try:
                return await self.gw.auth.account_for(key)
            except AuthFailed as exc:
                raise ssms.SsmsError(ssms.WRONG_KEY) from exc
        if params.get("email") or params.get("password"):
            return await self._login(params, client)
        sid = params.get("sid") or cookies.get("sid")
        if sid:
            return await self._session(sid)
        raise ssms.SsmsError(ssms.NO_KEY)

    async def _login(self, params: Params, client: str | None) -> int:
        """email + password, with the cabinet's throttle: 5 failures in 10 minutes for one
        email or from one address, and further tries are refused for a while."""
        email = params.get("email", "")
        keys = self.throttle.keys(email, client)
        now_ms = to_ms(self.gw.clock())
        wait_ms = self.throttle.wait_ms(keys, now_ms)
        if wait_ms > 0:
            minutes = max(1, -(-wait_ms // 60_000))
            raise ssms.SsmsError(ssms.WRONG_LOGIN, f"too many failed logins: retry in "
                                                   f"{minutes} min")
        try:
            account_id = await self.passwords.account_for(email, params.get("password"))
        except AuthFailed as exc:
            self.throttle.failed(keys, now_ms)
            raise ssms.SsmsError(ssms.WRONG_LOGIN) from exc
        self.throttle.succeeded(email)
        return account_id

    async def _session(self, sid: str) -> int:
        """A `method=login` session, stored with the cabinet's (so every worker and node knows
        it); idle sessions end after `ssms_session_idle_s`, each use pushes the end back."""
        if len(sid) > 128:
            raise ssms.SsmsError(ssms.SESSION_EXPIRED)
        token = _session_hash(sid)
        now = self.gw.clock()
        now_ms = to_ms(now)
        async with self.gw.db.read() as conn:
            row = await sessions.find(conn, token, now_ms)
        if row is None:
            raise ssms.SsmsError(ssms.SESSION_EXPIRED)
        if row.disabled:
            raise ssms.SsmsError(ssms.USER_BLOCKED)
        idle_ms = to_ms(self.session_idle_s)
        if row.expires_at - now_ms < idle_ms - 60_000:  # at most a write a minute
            async with self.gw.db.write() as conn:
                await sessions.extend(conn, token, now_ms + idle_ms)
        return row.account_id

    async def login(self, params: Params, client: str | None = None) -> dict[str, Any]:
        account_id = await self._login(params, client)
        now_ms = to_ms(self.gw.clock())
        sid = secrets.token_hex(16)
        async with self.gw.db.write() as conn:
            await sessions.create(conn, _session_hash(sid), account_id, "", now_ms,
                                  now_ms + to_ms(self.session_idle_s))
        return {"sid": sid}

    async def logout(self, account_id: int, params: Params) -> dict[str, Any]:
        sid = params.get("sid", "")
        if sid:
            async with self.gw.db.write() as conn:
                await sessions.remove(conn, _session_hash(sid))
        return {}

    # ------------------------------------------------------------------ methods

    async def push_msg(self, account_id: int, params: Params) -> dict[str, Any]:
        settings = await self.gw.account_settings.get(account_id)
        text = params.get("text", "")
        phones_raw = params.get("phone") or _json_list(params.get("phones"))
        if not text.strip() or not phones_raw:
            raise ssms.SsmsError(ssms.MISSING_PARAMS, "phone and text are required")
        if ssms.mixes_scripts(text):
            raise ssms.SsmsError(ssms.MIXED_SCRIPTS)
        phones = ssms.split_phones(phones_raw, self.gw.settings.ssms_max_phones)
        sender = self._sender(params.get("sender_name", ""), settings)
        status_url = parse_callback_url(params.get("dlr_url")) or settings.status_url
        made = await self.gw.send_sms(SmsRequest(
            account_id=account_id, settings=settings, phones=phones, text=text, sender=sender,
            route=ssms.parse_route(params.get("route")),
            external_id=(params.get("external_id") or None) and params["external_id"][:64],
            status_url=status_url, run_at_s=_unix_time(params.get("set_aside_time"))))
        first = made[0]
        data: dict[str, Any] = {"id": first.msg_id, "credits": format_rub(_part_price(first)),
                                "n_raw_sms": first.parts, "sender_name": sender}
        if len(made) > 1:
            data["ids"] = [v.msg_id for v in made]
        if params.get("call_protection"):
            wait = await self._wait(account_id, first.number, params, settings)
            data.update(call_to_number=wait.call_to, id_call=wait.request_id)
        return data

    def _sender(self, asked: str, settings: AccountSettings) -> str:
        default = settings.default_sender or self.gw.settings.smpp.sender
        if not asked.strip():
            return default
        return ssms.check_sender(asked, [default, *settings.senders])

    async def get_msg_report(self, account_id: int, params: Params) -> dict[str, Any]:
        raw = params.get("id", "").strip()
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise ssms.SsmsError(ssms.MISSING_PARAMS, "id is required")
        async with self.gw.db.read() as conn:
            found = await get_message(conn, account_id, int(raw))
        if found is None:
            raise ssms.SsmsError(ssms.NO_SUCH, "no such message")
        v, stat = found
        state = message_state(v, stat)
        tz = self.gw.settings.timezone
        return {
            "id": v.msg_id, "sender_name": v.sender or "", "text": v.text or "",
            "phone": v.number, "type": 1, "n_raw_sms": v.parts,
            "start_time": seed_date(v.created_at, tz),
            "last_update": seed_date(v.finished_at, tz) if v.finished_at else "",
            "id_tarifs_group": v.direction, "state": state,
            "state_text": ssms.state_text(state),
            "credits": format_rub(v.charged if v.final else _part_price(v) * v.parts),
            "channel": v.delivered_by or "", "external_id": v.external_id or "",
        }

    async def get_profile(self, account_id: int, params: Params) -> dict[str, Any]:
        settings = await self.gw.account_settings.get(account_id)
        async with self.gw.db.read() as conn:
            account = await repo.get_account(conn, account_id)
            used = await repo.spent(conn, account_id)
        return {
            "id": account.id, "email": account.email or "", "first_name": account.name,
            "last_name": "", "credits": format_rub(account.available),
            "credits_used": format_rub(used), "credits_name": "руб.", "currency": "руб.",
            "sender_name": settings.default_sender or self.gw.settings.smpp.sender,
            "referral_id": None,
        }

    async def get_prices(self, account_id: int, params: Params) -> dict[str, Any]:
        """Tariff groups are our directions ("RU", "RU:mts", "*"), each with its price per
        channel in roubles (an SMS price is per part)."""
        only = params.get("group_directions", "").strip().upper()
        async with self.gw.db.read() as conn:
            account = await repo.get_account(conn, account_id)
            rows = await repo.plan_tariffs(conn, account.tariff_plan)
        groups: dict[str, dict[str, str]] = {}
        for direction, channel, price in rows:
            if only in ("", "1", "TRUE") or direction.upper().startswith(only):
                groups.setdefault(direction, {})[channel] = format_rub(price)
        return {"group_directions": groups}

    async def wait_call(self, account_id: int, params: Params) -> dict[str, Any]:
        if not params.get("phone") or not params.get("call_protection"):
            raise ssms.SsmsError(ssms.MISSING_PARAMS, "phone and call_protection are required")
        settings = await self.gw.account_settings.get(account_id)
        wait = await self._wait(account_id, params["phone"], params, settings)
        return {"call_to_number": wait.call_to, "id_call": wait.request_id,
                "waiting_call_from": wait.number}

    async def _wait(self, account_id: int, phone: str, params: Params,
                    settings: AccountSettings) -> Verification:
        hook = parse_callback_url(params.get("hook_url")) or settings.incoming_call_url
        try:
            return await self.gw.wait_call(WaitRequest(account_id, phone,
                                                       params.get("call_protection"), hook))
        except PoolExhausted as exc:
            raise ssms.SsmsError(ssms.SEND_FAILED, str(exc)) from exc


def _session_hash(sid: str) -> str:
    """Stored hashed, and apart from cabinet sessions (a sid is no cabinet cookie)."""
    return hashlib.sha256(b"ssms:" + sid.encode()).hexdigest()


def render(params: Params, payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """(content type, body): JSON for `format=json` (any case), else the default XML."""
    if params.get("format", "").strip().lower() in ("json", "jsonp"):
        return JSON_TYPE, orjson.dumps(payload)
    return XML_TYPE, ssms.to_xml(payload).encode()


def _part_price(v: Verification) -> int:
    """What one part costs on the message's most expensive channel (the ssms `credits`)."""
    if ChannelName.SMS.value in v.prices:
        return v.prices[ChannelName.SMS.value] // max(v.parts, 1)
    return max(v.prices.values(), default=0)


def _json_list(raw: str | None) -> str:
    """Very old clients send `phones` as a JSON array string."""
    if not raw:
        return ""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _unix_time(raw: str | None) -> float | None:
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise BadRequest("set_aside_time must be a Unix time in seconds")
    return float(text)


# ---------------------------------------------------------------------- the ASGI front door


async def read_params(scope: Mapping[str, Any], receive: Any, limit: int) -> dict[str, str]:
    """Query and body parameters merged (the body wins); any content type clients use."""
    params = dict(parse_form(scope.get("query_string", b"")))
    if scope["method"] not in ("POST", "PUT"):
        return params
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    ctype = headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        form = await Request(dict(scope), receive).form(max_files=0, max_fields=200)
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params
    body = await read_body(receive, headers, limit)
    if not body:
        return params
    if ctype.startswith("application/json"):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("body is not JSON") from exc
        if isinstance(data, dict):
            params.update({str(k): str(v) for k, v in data.items()
                           if isinstance(v, str | int | float) and not isinstance(v, bool)})
        return params
    params.update(parse_form(body))
    return params


def cookies_of(scope: Mapping[str, Any]) -> dict[str, str]:
    for name, value in scope["headers"]:
        if name == b"cookie":
            out = {}
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                out[k] = v
            return out
    return {}


async def serve(api: SsmsApi, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer one HTTP request to `/`: always 200, in the envelope (bad bodies included)."""
    try:
        params = await read_params(scope, receive, api.gw.settings.max_body_bytes)
    except Exception as exc:  # an unreadable body: the query still says the format
        if not isinstance(exc, KaskadError):
            log.exception("unreadable request to /")
        query = dict(parse_form(scope.get("query_string", b"")))
        ctype, body = render(query, ssms.envelope(ssms.MISSING_PARAMS, None))
    else:
        try:
            client = scope.get("client")
            ctype, body = await api.answer(params, cookies_of(scope),
                                           client[0] if client else None)
        except Exception:  # a bug: answer in the envelope, log it, never a traceback
            log.exception("unhandled error", path="/", method=params.get("method"))
            ctype, body = render(params, ssms.envelope(ssms.SEND_FAILED, None))
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
