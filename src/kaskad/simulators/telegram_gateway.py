"""A Telegram Gateway (gatewayapi.telegram.org) simulator served over loopback HTTP.

The real gateway has no test mode beyond the token owner's own number, so the Telegram channel's
client, its report receiver and its reconciliation are exercised against this server instead.
It speaks the same wire protocol (see shared/spec/telegram-gateway.md): only the base URL and the
token differ from production. What happens to each number comes from the sandbox World (last
digit) or from explicit NumberRule overrides set by a test.

Deliberately independent of the rest of kaskad (only the gateway's own facts in
kaskad.domain.telegram and the sandbox world are imported): a simulator that shared the client's
code would share its bugs too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kaskad.domain.telegram import (
    CODE_LENGTH_RANGE,
    CODE_RE,
    MAX_CALLBACK_URL_BYTES,
    MAX_PAYLOAD_BYTES,
    METHODS,
    PHONE_RE,
    TTL_RANGE,
    sign_report,
)
from kaskad.simulators.world import Telegram, World

__all__ = ["NumberRule", "SimCall", "SimMessage", "TelegramGatewaySim", "rule_from_world",
           "serve_forever"]

_log = logging.getLogger(__name__)

FINALS: tuple[str, ...] = ("delivered", "read", "expired", "silent")

DEFAULT_CODE_LENGTH = 6  # when neither code nor code_length is given
MAX_CODE_ATTEMPTS = 3  # wrong codes before code_max_attempts_exceeded
MAX_REPORT_ATTEMPTS = 10  # first POST included, as the gateway documents
MAX_RETRY_DELAY_S = 30.0
REPORT_TIMEOUT_S = 5.0
MAX_BODY_BYTES = 64 * 1024  # far above any legitimate request; bigger ones are refused
START_TIMEOUT_S = 10.0
SENDER_USERNAME_LIMITS = (5, 32)
FINISHED = frozenset({"delivered", "read", "expired"})  # revoke changes nothing any more
_CANONICAL = {name.lower(): name for name in METHODS}
_INTEGER_RE = re.compile(r"[+-]?[0-9]{1,10}", re.ASCII)


class GatewayError(Exception):
    """An answer `{"ok": false, "error": <error>}`: raised anywhere while serving a call."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


# --------------------------------------------------------------------------- rules and state


@dataclass
class NumberRule:
    """How the simulated gateway treats one number; tests set it to drive each branch."""

    telegram: bool = True  # False: the number has no Telegram (PHONE_NUMBER_NOT_FOUND)
    final: str = "delivered"  # "delivered" | "read" | "expired" | "silent"
    report_delay_s: float | None = None  # None: the simulator's default
    duplicates: int = 0  # extra identical copies of every report POST
    lose_reports: bool = False  # statuses change, but no report is POSTed
    flood_wait_s: int = 0  # >0: every method touching this number answers FLOOD_WAIT_<n>


def rule_from_world(world: World, phone_digits: str) -> NumberRule:
    """The sandbox world's Telegram behaviour for a number, as a rule of this simulator."""
    behaviour = world.behaviour(_digits(phone_digits) or "0").telegram
    if behaviour is Telegram.ABSENT:
        return NumberRule(telegram=False)
    if behaviour is Telegram.SILENT:
        return NumberRule(final="silent")
    if behaviour is Telegram.EXPIRES:
        return NumberRule(final="expired")
    if behaviour is Telegram.BUSY:
        return NumberRule(flood_wait_s=1)
    return NumberRule()


@dataclass
class SimMessage:
    """One request as the gateway keeps it; tests read it to assert what really happened."""

    request_id: str
    phone: str  # "+" E.164
    cost: Decimal
    created_at: float
    prepaid: bool = False  # created by checkSendAbility: one free send may use it
    sent: bool = False  # a sendVerificationMessage used it
    code: str | None = None
    status: str | None = None  # delivery status; None until sent
    status_updated_at: int = 0
    refunded: bool = False
    callback_url: str | None = None
    payload: str | None = None
    ttl: int | None = None
    sender_username: str | None = None
    sent_at: float | None = None
    verification: str | None = None  # code_valid | code_invalid | ... ; None until checked
    verification_updated_at: int = 0
    code_entered: str | None = None
    code_attempts: int = 0  # wrong codes entered


@dataclass
class SimCall:
    """One HTTP call received, as the test sees it (method canonical when known)."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    http_method: str = "POST"


@dataclass
class _SendOptions:
    """sendVerificationMessage's parameters once every documented limit is checked."""

    phone: str
    code: str | None = None
    code_length: int | None = None
    request_id: str | None = None
    sender_username: str | None = None
    callback_url: str | None = None
    payload: str | None = None
    ttl: int | None = None


# --------------------------------------------------------------------------- parameters


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isascii() and ch.isdigit())


def _text(params: dict[str, Any], name: str, error: str) -> str | None:
    """A string parameter; numbers are accepted as their text (JSON clients send them)."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise GatewayError(error)
    if isinstance(value, int):
        if abs(value) >= 10**20:
            raise GatewayError(error)
        return str(value)
    if isinstance(value, str):
        return value
    raise GatewayError(error)


def _integer(params: dict[str, Any], name: str, error: str) -> int | None:
    """An integer parameter, given as a JSON number or as decimal text."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise GatewayError(error)


def _phone(params: dict[str, Any]) -> str:
    """phone_number in E.164 with the plus; the plus itself is optional on input."""
    number = _text(params, "phone_number", "PHONE_NUMBER_INVALID")
    if not number:
        raise GatewayError("PHONE_NUMBER_INVALID")
    digits = number[1:] if number.startswith("+") else number
    if not PHONE_RE.fullmatch(digits):
        raise GatewayError("PHONE_NUMBER_INVALID")
    return "+" + digits


def _in_range(value: int | None, limits: tuple[int, int], error: str) -> int | None:
    if value is not None and not limits[0] <= value <= limits[1]:
        raise GatewayError(error)
    return value


def _callback_url(params: dict[str, Any]) -> str | None:
    url = _text(params, "callback_url", "CALLBACK_URL_INVALID")
    if not url:
        return None
    if len(url.encode()) > MAX_CALLBACK_URL_BYTES:
        raise GatewayError("CALLBACK_URL_INVALID")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise GatewayError("CALLBACK_URL_INVALID") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GatewayError("CALLBACK_URL_INVALID")
    return url


def _payload(params: dict[str, Any]) -> str | None:
    payload = _text(params, "payload", "PAYLOAD_INVALID")
    if payload and len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise GatewayError("PAYLOAD_INVALID")
    return payload or None


def _sender(params: dict[str, Any]) -> str | None:
    sender = _text(params, "sender_username", "SENDER_USERNAME_INVALID")
    if not sender:
        return None
    low, high = SENDER_USERNAME_LIMITS
    valid = sender.isascii() and all(ch.isalnum() or ch == "_" for ch in sender)
    if not valid or not low <= len(sender) <= high:
        raise GatewayError("SENDER_USERNAME_INVALID")
    return sender


def _code(params: dict[str, Any]) -> str | None:
    code = _text(params, "code", "CODE_INVALID")
    if code is None:
        return None
    if not CODE_RE.fullmatch(code):
        raise GatewayError("CODE_INVALID")
    return code


def _send_options(params: dict[str, Any], phone: str) -> _SendOptions:
    """Every limit of sendVerificationMessage checked, in the order the errors are reported."""
    code = _code(params)
    code_length = _in_range(_integer(params, "code_length", "CODE_LENGTH_INVALID"),
                            CODE_LENGTH_RANGE, "CODE_LENGTH_INVALID")
    ttl = _in_range(_integer(params, "ttl", "TTL_INVALID"), TTL_RANGE, "TTL_INVALID")
    return _SendOptions(
        phone=phone, code=code, code_length=code_length, ttl=ttl,
        payload=_payload(params), callback_url=_callback_url(params),
        sender_username=_sender(params),
        request_id=_text(params, "request_id", "REQUEST_ID_INVALID") or None,
    )


def _generate_code(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def _bearer(value: str | None) -> str | None:
    """The token of an Authorization header; a non-Bearer header is kept (and will not match)."""
    if value is None:
        return None
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else value


# --------------------------------------------------------------------------- HTTP plumbing


async def _read_body(request: Request) -> bytes:
    """The request body, refused above MAX_BODY_BYTES instead of buffering anything sent."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise GatewayError("REQUEST_TOO_LARGE")
        chunks.append(chunk)
    return b"".join(chunks)


def _body_params(content_type: str, body: bytes) -> dict[str, Any]:
    """JSON or form parameters of a POST body; anything malformed is an error envelope."""
    if not body.strip():
        return {}
    if "json" in content_type:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise GatewayError("INVALID_JSON") from exc
        if not isinstance(parsed, dict):
            raise GatewayError("INVALID_JSON")
        return parsed
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GatewayError("INVALID_ENCODING") from exc
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


async def _read_params(request: Request) -> dict[str, Any]:
    """Query string parameters, overridden by those of the body (form or JSON)."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        body = await _read_body(request)
        params.update(_body_params(request.headers.get("content-type", "").lower(), body))
    return params


def _ok(result: object) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error})


def _encode(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class _InProcessServer(uvicorn.Server):
    """uvicorn without signal handlers: the simulator lives inside someone else's process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _serve(server: uvicorn.Server) -> None:
    """Run uvicorn; its sys.exit on a failed start must not escape into the event loop."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"the server could not start (exit code {exc.code})") from exc


# --------------------------------------------------------------------------- the simulator


class TelegramGatewaySim:
    """The four Gateway methods, a prepaid balance and signed delivery reports with retries."""

    def __init__(self, token: str, *, world: World | None = None, report_delay_s: float = 0.2,
                 cost_usd: Decimal = Decimal("0.01"), balance_usd: Decimal = Decimal("100"),
                 report_retry_base_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.world = world
        self.report_delay_s = report_delay_s
        self.cost_usd = cost_usd
        self.balance_usd = balance_usd
        self.report_retry_base_s = report_retry_base_s
        self.clock = clock
        self.messages: dict[str, SimMessage] = {}
        self.calls: list[SimCall] = []
        self.reports_sent: list[tuple[str, bytes, int]] = []
        self._rules: dict[str, NumberRule] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lifecycles: dict[str, asyncio.Task[None]] = {}
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.app = Starlette(routes=[Route("/{method:path}", self._handle,
                                           methods=["GET", "POST"])])

    # ----------------------------------------------------------------------- rules

    def set_rule(self, phone: str, rule: NumberRule) -> None:
        """Override the world for one number (any form: "+7999...", "7999...")."""
        if rule.final not in FINALS:
            raise ValueError(f"final must be one of {FINALS}, got {rule.final!r}")
        self._rules[_digits(phone)] = rule

    def rule(self, phone: str) -> NumberRule:
        digits = _digits(phone)
        if digits in self._rules:
            return self._rules[digits]
        if self.world is not None and digits:
            return rule_from_world(self.world, digits)
        return NumberRule()

    def _check_flood(self, phone: str) -> None:
        wait = self.rule(phone).flood_wait_s
        if wait > 0:
            raise GatewayError(f"FLOOD_WAIT_{wait}")

    # ----------------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on this event loop; returns the base URL ("http://127.0.0.1:PORT/")."""
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning",
                                log_config=None, lifespan="off", ws="none",
                                timeout_graceful_shutdown=2)
        server = _InProcessServer(config)
        self._server = server
        self._serve_task = asyncio.create_task(_serve(server))
        self._client = httpx.AsyncClient(timeout=REPORT_TIMEOUT_S, trust_env=False)
        try:
            bound = await self._wait_started(server, self._serve_task)
        except BaseException:
            await self.stop()
            raise
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{bound}/"

    @staticmethod
    async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> int:
        """uvicorn has no started event: poll its flag, then read the port the OS chose."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the simulator's server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("the simulator's server did not start")
            await asyncio.sleep(0.005)
        port: int = server.servers[0].sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop serving and cancel every pending status change and report delivery."""
        server, task = self._server, self._serve_task
        self._server = None
        self._serve_task = None
        if server is not None and task is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task
        tasks = list(self._tasks)
        for pending in tasks:
            pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def wait_closed(self) -> None:
        """Until the server stops (serve_forever's main loop)."""
        if self._serve_task is not None:
            await self._serve_task

    async def settle(self) -> None:
        """Until no status change or report delivery is pending (tests)."""
        while pending := {task for task in self._tasks if not task.done()}:
            await asyncio.wait(pending)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished task; an unexpected failure is logged, never lost silently."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("telegram simulator task failed", exc_info=task.exception())

    # ----------------------------------------------------------------------- HTTP entry

    async def _handle(self, request: Request) -> JSONResponse:
        """One call: never an HTTP error, always the gateway's JSON envelope."""
        name = str(request.path_params.get("method", "")).strip("/")
        method = _CANONICAL.get(name.lower(), name)
        headers = {key.lower(): value for key, value in request.headers.items()}
        call = SimCall(method, {}, headers, request.method)
        self.calls.append(call)
        try:
            call.params = await _read_params(request)
            return _ok(self._dispatch(method, call.params, headers))
        except GatewayError as exc:
            return _error(exc.error)
        except Exception:
            _log.exception("telegram simulator failed on %s", method)
            return _error("INTERNAL_ERROR")

    def _dispatch(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> object:
        self._authorize(params, headers)
        if method == "checkSendAbility":
            return self._check_send_ability(params)
        if method == "sendVerificationMessage":
            return self._send(params)
        if method == "checkVerificationStatus":
            return self._check_status(params)
        if method == "revokeVerificationMessage":
            return self._revoke(params)
        raise GatewayError("UNKNOWN_METHOD")

    def _authorize(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        given = _bearer(headers.get("authorization"))
        if given is None:
            given = _text(params, "access_token", "ACCESS_TOKEN_INVALID")
        if not given:
            raise GatewayError("ACCESS_TOKEN_REQUIRED")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise GatewayError("ACCESS_TOKEN_INVALID")

    # ----------------------------------------------------------------------- methods

    def _check_send_ability(self, params: dict[str, Any]) -> object:
        """Free when the number cannot receive; otherwise one message is charged in advance."""
        phone = _phone(params)
        self._check_flood(phone)
        if not self.rule(phone).telegram:
            raise GatewayError("PHONE_NUMBER_NOT_FOUND")
        message = self._new_message(phone)
        message.prepaid = True
        return self._status_json(message)

    def _send(self, params: dict[str, Any]) -> object:
        phone = _phone(params)
        self._check_flood(phone)
        options = _send_options(params, phone)
        if not self.rule(phone).telegram:
            raise GatewayError("PHONE_NUMBER_NOT_FOUND")
        if options.request_id is not None:
            message = self._prepaid(options.request_id, phone)
        else:
            message = self._new_message(phone)
        self._dispatch_message(message, options)
        return self._status_json(message)

    def _prepaid(self, request_id: str, phone: str) -> SimMessage:
        """The request a checkSendAbility paid for: same number, used by one send only."""
        message = self.messages.get(request_id)
        if message is None or not message.prepaid or message.sent or message.phone != phone:
            raise GatewayError("REQUEST_ID_INVALID")
        return message

    def _new_message(self, phone: str) -> SimMessage:
        """A charged request; the balance is checked first so errors cost nothing."""
        if self.balance_usd < self.cost_usd:
            raise GatewayError("BALANCE_NOT_ENOUGH")
        self.balance_usd -= self.cost_usd
        request_id = secrets.token_hex(12)
        message = SimMessage(request_id=request_id, phone=phone, cost=self.cost_usd,
                             created_at=self.clock())
        self.messages[request_id] = message
        return message

    def _dispatch_message(self, message: SimMessage, options: _SendOptions) -> None:
        """Mark the message sent and schedule what the number's rule says happens next.

        The rule is read once, here: changing it later affects later sends, not this one.
        """
        message.sent = True
        message.sent_at = self.clock()
        message.code = options.code or _generate_code(options.code_length or DEFAULT_CODE_LENGTH)
        message.callback_url = options.callback_url
        message.payload = options.payload
        message.ttl = options.ttl
        message.sender_username = options.sender_username
        self._set_status(message, "sent")
        rule = self.rule(message.phone)
        if rule.final != "silent":
            task = self._spawn(self._deliver_later(message, rule))
            self._lifecycles[message.request_id] = task

    def _check_status(self, params: dict[str, Any]) -> object:
        message = self._message(params)
        self._check_flood(message.phone)
        code = _text(params, "code", "CODE_INVALID")
        if code:
            if not CODE_RE.fullmatch(code):
                raise GatewayError("CODE_INVALID")
            self._enter_code(message, code)
        return self._status_json(message)

    def _revoke(self, params: dict[str, Any]) -> object:
        """Accepted always; changes nothing once delivered, read or expired; never refunds."""
        message = self._message(params)
        self._check_flood(message.phone)
        if message.status is None or message.status in FINISHED or message.status == "revoked":
            return True
        lifecycle = self._lifecycles.pop(message.request_id, None)
        if lifecycle is not None:
            lifecycle.cancel()
        self._change(message, "revoked", self.rule(message.phone))
        return True

    def _message(self, params: dict[str, Any]) -> SimMessage:
        request_id = _text(params, "request_id", "REQUEST_ID_INVALID")
        message = self.messages.get(request_id or "")
        if message is None:
            raise GatewayError("REQUEST_ID_INVALID")
        return message

    # ----------------------------------------------------------------------- verification

    def _enter_code(self, message: SimMessage, code: str) -> None:
        """Record the code the user typed; Telegram judges it while the message is live."""
        message.code_entered = code
        if message.verification in ("code_valid", "code_max_attempts_exceeded", "expired"):
            return
        if self._code_expired(message):
            verdict = "expired"
        elif message.code is not None and hmac.compare_digest(code, message.code):
            verdict = "code_valid"
        else:
            message.code_attempts += 1
            too_many = message.code_attempts >= MAX_CODE_ATTEMPTS
            verdict = "code_max_attempts_exceeded" if too_many else "code_invalid"
        message.verification = verdict
        message.verification_updated_at = int(self.clock())

    def _code_expired(self, message: SimMessage) -> bool:
        """A code dies with its message: expired or revoked, or older than its ttl."""
        if message.status in ("expired", "revoked"):
            return True
        if message.ttl is None or message.sent_at is None:
            return False
        return self.clock() > message.sent_at + message.ttl

    # ----------------------------------------------------------------------- status changes

    async def _deliver_later(self, message: SimMessage, rule: NumberRule) -> None:
        """The message's fate after the report delay: delivered (then read) or expired."""
        delay = self.report_delay_s if rule.report_delay_s is None else rule.report_delay_s
        await asyncio.sleep(delay)
        if rule.final == "expired":
            self.balance_usd += message.cost
            message.refunded = True
            self._change(message, "expired", rule)
        else:
            self._change(message, "delivered", rule)
            if rule.final == "read":
                await asyncio.sleep(delay)
                self._change(message, "read", rule)
        self._lifecycles.pop(message.request_id, None)

    def _set_status(self, message: SimMessage, status: str) -> None:
        message.status = status
        message.status_updated_at = int(self.clock())

    def _change(self, message: SimMessage, status: str, rule: NumberRule) -> None:
        """A later status change: visible at once, and reported unless the rule loses it."""
        self._set_status(message, status)
        if message.callback_url and not rule.lose_reports:
            body = _encode(self._status_json(message))
            timestamp = int(self.clock())
            for _ in range(1 + max(rule.duplicates, 0)):
                self._spawn(self._post_report(message.callback_url, body, timestamp))

    def _status_json(self, message: SimMessage) -> dict[str, object]:
        """RequestStatus as the gateway returns and reports it (money as float USD)."""
        result: dict[str, object] = {
            "request_id": message.request_id,
            "phone_number": message.phone,
            "request_cost": float(message.cost),
        }
        if message.refunded:
            result["is_refunded"] = True
        result["remaining_balance"] = float(self.balance_usd)
        if message.status is not None:
            result["delivery_status"] = {"status": message.status,
                                         "updated_at": message.status_updated_at}
        if message.verification is not None:
            verification: dict[str, object] = {"status": message.verification,
                                               "updated_at": message.verification_updated_at}
            if message.code_entered is not None:
                verification["code_entered"] = message.code_entered
            result["verification_status"] = verification
        if message.payload is not None:
            result["payload"] = message.payload
        return result

    # ----------------------------------------------------------------------- reports

    async def _post_report(self, url: str, body: bytes, timestamp: int) -> None:
        """POST one report until HTTP 200, at most MAX_REPORT_ATTEMPTS times, then drop it.

        Retries carry a fresh timestamp (the receiver checks freshness); the first attempt of
        every duplicate shares the original one, as the gateway's own duplicates would.
        """
        for attempt in range(MAX_REPORT_ATTEMPTS):
            if attempt:
                delay = self.report_retry_base_s * 2 ** (attempt - 1)
                await asyncio.sleep(min(delay, MAX_RETRY_DELAY_S))
                timestamp = int(self.clock())
            if await self._post_once(url, body, timestamp) == 200:
                return
        _log.info("telegram simulator dropped a report to %s after %d attempts", url,
                  MAX_REPORT_ATTEMPTS)

    async def _post_once(self, url: str, body: bytes, timestamp: int) -> int:
        """One POST; its HTTP status, or 0 when the receiver could not be reached."""
        headers = {"Content-Type": "application/json",
                   "X-Request-Timestamp": str(timestamp),
                   "X-Request-Signature": sign_report(self.token, timestamp, body)}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=REPORT_TIMEOUT_S, trust_env=False)
        try:
            response = await self._client.post(url, content=body, headers=headers)
            status = response.status_code
        except (httpx.HTTPError, OSError, ValueError):
            status = 0
        self.reports_sent.append((url, body, status))
        return status


async def serve_forever(host: str, port: int, token: str, report_delay_s: float = 0.2) -> None:
    """Standalone simulator following the sandbox world (CLI); runs until cancelled."""
    sim = TelegramGatewaySim(token, world=World(), report_delay_s=report_delay_s)
    url = await sim.start(host, port)
    print(f"Telegram Gateway simulator listening on {url}", flush=True)
    try:
        await sim.wait_closed()
    finally:
        await sim.stop()
