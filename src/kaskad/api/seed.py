"""The seed 002 API: POST /api/send/ and our status lookup, byte-compatible with its clients.

The endpoint logic works on plain headers, query and body (`SeedApi`), so two front doors share
it: the documented FastAPI routes and `FastPaths`, a raw ASGI dispatcher in front of FastAPI that
answers these hot paths without the framework's middleware stack (measured: FastAPI's stack
cost more CPU per request than the whole verification behind it).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from kaskad.api.errors import JSON, seed_error_payload
from kaskad.bootstrap import Gateway
from kaskad.domain.channels import ChannelName
from kaskad.domain.clock import seed_date
from kaskad.domain.errors import BadRequest, KaskadError, NotFound
from kaskad.domain.money import format_rub
from kaskad.services.send_code import SendCodeInput
from kaskad.storage.verifications import Verification, get_verification, latest_provider_ref

log = structlog.get_logger(__name__)

SEND_FIELDS = frozenset({"apiKey", "number", "resending", "code_length", "code", "callback_url",
                         "security"})
STATUS_FIELDS = frozenset({"apiKey", "request_id", "security"})
CHECK_FIELDS = frozenset({"apiKey", "request_id", "code", "security"})
SEND_PATH = "/api/send/"
STATUS_PATH = "/api/status/"
CHECK_PATH = "/api/check/"

Answer = tuple[int, dict[str, Any]]


class SendRequest(BaseModel):
    """Documentation of the body; parsing is done by hand to answer in the seed's error shape."""

    model_config = {"extra": "forbid"}
    apiKey: str | None = Field(None, description="API key, unless sent in Authorization")
    number: str | int = Field(..., description="Subscriber number, e.g. 79001234567")
    resending: Literal["voice", "sms", "stop"] | None = None
    code_length: int | str | None = Field(None, description="4..8, default 4")
    code: str | int | None = Field(None, description="Digits; generated when absent")
    callback_url: str | None = None
    security: dict[str, str] | None = Field(None, description='{"apiKey": "..."}')


class StatusRequest(BaseModel):
    model_config = {"extra": "forbid"}
    apiKey: str | None = None
    request_id: str = Field(..., max_length=32)
    security: dict[str, str] | None = None


class CheckRequest(BaseModel):
    model_config = {"extra": "forbid"}
    apiKey: str | None = None
    request_id: str = Field(..., max_length=32)
    code: str | int = Field(..., description="The code the subscriber entered")
    security: dict[str, str] | None = None


class CheckOk(BaseModel):
    result: Literal["ok"]
    request_id: str
    valid: bool


class SendOk(BaseModel):
    result: Literal["ok"]
    state: str
    state_reason: str
    resend: str
    number: str
    code: str
    price: str
    request_id: str


class StatusOk(SendOk):
    date: str


class SeedError(BaseModel):
    result: Literal["error"]
    error_code: str


MODELS = (SendRequest, StatusRequest, CheckRequest, SendOk, StatusOk, CheckOk, SeedError)


class TooLarge(BadRequest):
    pass


def render(v: Verification, *, with_date: bool = False, tz: str = "UTC") -> dict[str, Any]:
    out: dict[str, Any] = {
        "result": "ok", "state": v.state.value, "state_reason": v.state_reason,
        "resend": v.resend, "number": v.number, "code": v.code,
        "price": format_rub(v.current_price), "request_id": v.request_id,
    }
    if with_date:
        out["date"] = seed_date(v.finished_at or v.updated_at, tz)
    return out


def parse_body(body: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object of a body; any fault is unknown_request."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body is not JSON in UTF-8") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(f"unknown fields: {sorted(unknown)}")
    return data


def api_key_of(headers: Mapping[str, str], body: Mapping[str, Any]) -> object:
    """The key from the Authorization header ("KEY" or "Bearer KEY"), else from the JSON."""
    header = headers.get("authorization")
    if header:
        header = header.strip()
        if header.lower().startswith("bearer "):
            header = header[7:].strip()
        return header
    if "apiKey" in body:
        return body["apiKey"]
    security = body.get("security")
    if security is not None:
        if not isinstance(security, dict):
            raise BadRequest("security must be an object")
        return security.get("apiKey")
    return None


def _scalar(value: object, name: str) -> object:
    """Fields are strings or numbers: a list, an object or a boolean is the wrong type
    (unknown_request); a wrong number (4.5 digits) is the field's own error."""
    if value is None or (isinstance(value, str | int | float) and not isinstance(value, bool)):
        return value
    raise BadRequest(f"{name} has the wrong type")


class SeedApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.limit = gw.settings.max_body_bytes
        self.tz = gw.settings.timezone
        m = gw.metrics
        self._latency = {e: m.api_latency.labels(e) for e in ("send", "status", "check")}
        self._results = m.api_results

    async def answer(self, endpoint: str, work: Callable[[], Awaitable[dict[str, Any]]]) -> Answer:
        started = time.perf_counter()
        try:
            status, payload, result = 200, await work(), "ok"
        except TooLarge:
            status, payload, result = 413, seed_error_payload(BadRequest()), "unknown_request"
        except KaskadError as exc:
            status, payload, result = 200, seed_error_payload(exc), exc.code
        self._results.inc(endpoint, result)
        self._latency[endpoint].observe(time.perf_counter() - started)
        return status, payload

    async def send(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        data = parse_body(body, SEND_FIELDS)
        v = await self.gw.send_code(SendCodeInput(
            api_key=api_key_of(headers, data), number=_scalar(data.get("number"), "number"),
            resending=_scalar(data.get("resending"), "resending"),
            code_length=_scalar(data.get("code_length"), "code_length"),
            code=_scalar(data.get("code"), "code"),
            callback_url=_scalar(data.get("callback_url"), "callback_url")))
        return render(v)

    async def status(self, headers: Mapping[str, str], query: Mapping[str, str],
                     body: bytes | None) -> dict[str, Any]:
        if body is None:
            data: dict[str, Any] = {k: v for k, v in query.items() if k in STATUS_FIELDS}
        else:
            data = parse_body(body, STATUS_FIELDS)
        account_id = await self.gw.auth.account_for(api_key_of(headers, data))
        v = await self._own_verification(account_id, data)
        return render(v, with_date=True, tz=self.tz)

    async def check(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Compare the code the subscriber entered; when Telegram carried it, tell Telegram
        too (checkVerificationStatus with the code: it counts conversion)."""
        data = parse_body(body, CHECK_FIELDS)
        account_id = await self.gw.auth.account_for(api_key_of(headers, data))
        v = await self._own_verification(account_id, data)
        code = _scalar(data.get("code"), "code")
        entered = str(code).strip() if code is not None else ""
        if not entered.isascii() or not entered.isdigit() or len(entered) > 8:
            raise BadRequest("code must be digits")
        telegram = self.gw.telegram
        if telegram is not None and ChannelName.TELEGRAM in v.channels:
            async with self.gw.db.read() as conn:
                ref = await latest_provider_ref(conn, v.request_id,
                                                v.channels.index(ChannelName.TELEGRAM))
            if ref is not None:
                telegram.check_code(ref, entered)
        return {"result": "ok", "request_id": v.request_id,
                "valid": hmac.compare_digest(entered.encode(), v.code.encode())}

    async def _own_verification(self, account_id: int, data: Mapping[str, Any]) -> Verification:
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 32:
            raise BadRequest("request_id is required")
        async with self.gw.db.read() as conn:
            v = await get_verification(conn, request_id, account_id)
        if v is None:
            raise NotFound(request_id)
        return v


class FastPaths:
    """Raw ASGI in front of the FastAPI app for the seed API's two paths and the root."""

    def __init__(self, app: Any, api: SeedApi, root: Any = None) -> None:
        self.app = app
        self.api = api
        self.root = root  # the ssms-family API, which clients post to the server root

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path")
        if self.root is not None and path in ("", "/") and scope["type"] == "http":
            await self.root(scope, receive, send)
            return
        if scope["type"] != "http" or path not in (SEND_PATH, STATUS_PATH):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method != "POST" and not (path == STATUS_PATH and method == "GET"):
            await self.app(scope, receive, send)  # FastAPI answers 405 in our error shape
            return
        try:
            status, payload = await self._handle(scope, receive, path, method)
        except Exception:  # a bug: answer cleanly, log it, never show a traceback
            log.exception("unhandled error", path=path)
            status, payload = 503, {"result": "error", "error_code": "temporarily_unavailable"}
        body = orjson.dumps(payload)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict[str, Any], receive: Any, path: str,
                      method: str) -> Answer:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if method == "GET":
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            return await self.api.answer("status", lambda: self.api.status(headers, query, None))
        endpoint = "send" if path == SEND_PATH else "status"
        try:
            body = await read_body(receive, headers, self.api.limit)
        except TooLarge:
            return await self.api.answer(endpoint, _raise_too_large)
        if endpoint == "send":
            return await self.api.answer("send", lambda: self.api.send(headers, body))
        return await self.api.answer("status", lambda: self.api.status(headers, {}, body))


async def _raise_too_large() -> dict[str, Any]:
    raise TooLarge()


async def read_body(receive: Any, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge()
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_body(schema: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


def build_router(api: SeedApi) -> APIRouter:
    """The same endpoints as FastAPI routes: the OpenAPI document, and the answer when the app
    is served without FastPaths in front."""
    router = APIRouter()

    def _respond(answer: Answer) -> Response:
        status, payload = answer
        return Response(orjson.dumps(payload), status_code=status, media_type=JSON)

    async def _body(request: Request) -> bytes:
        return await read_body(request.receive, request.headers, api.limit)

    ok_or_error: dict[int | str, dict[str, Any]] = {
        200: {"description": "ok, or an error in the seed's shape (always HTTP 200)",
              "content": {"application/json": {"schema": {"anyOf": [
                  {"$ref": "#/components/schemas/SendOk"},
                  {"$ref": "#/components/schemas/SeedError"}]}}}},
        413: {"description": "body too large", "model": SeedError},
    }
    status_answers: dict[int | str, dict[str, Any]] = {
        200: {"description": "state, or an error in the seed's shape",
              "content": {"application/json": {"schema": {"anyOf": [
                  {"$ref": "#/components/schemas/StatusOk"},
                  {"$ref": "#/components/schemas/SeedError"}]}}}},
        413: {"description": "body too large", "model": SeedError},
    }

    @router.post(SEND_PATH, operation_id="send_code", response_model=None,
                 responses=ok_or_error, summary="Send a verification code",
                 openapi_extra=_json_body("SendRequest"))
    async def send(request: Request) -> Response:
        """Telegram first, then `resending` (seed 002). The answer tells the first step's
        outcome (or `pending` after `send_wait_s`); the final state goes to `callback_url`."""

        async def work() -> dict[str, Any]:
            return await api.send(request.headers, await _body(request))

        return _respond(await api.answer("send", work))

    @router.get(STATUS_PATH, operation_id="get_status", response_model=None,
                responses=status_answers, summary="Read a request's state by request_id")
    async def status_get(request: Request, request_id: str = "",
                         apiKey: str | None = None) -> Response:
        query = dict(request.query_params)
        return _respond(await api.answer("status", lambda: api.status(request.headers, query,
                                                                      None)))

    @router.post(STATUS_PATH, operation_id="post_status", response_model=None,
                 responses=status_answers, summary="Read a request's state by request_id",
                 openapi_extra=_json_body("StatusRequest"))
    async def status_post(request: Request) -> Response:
        async def work() -> dict[str, Any]:
            return await api.status(request.headers, {}, await _body(request))

        return _respond(await api.answer("status", work))

    @router.post(CHECK_PATH, operation_id="check_code", response_model=None,
                 responses={200: {"description": "whether the code matches, or an error",
                                  "content": {"application/json": {"schema": {"anyOf": [
                                      {"$ref": "#/components/schemas/CheckOk"},
                                      {"$ref": "#/components/schemas/SeedError"}]}}}},
                            413: {"description": "body too large", "model": SeedError}},
                 summary="Check the code the subscriber entered",
                 openapi_extra=_json_body("CheckRequest"))
    async def check(request: Request) -> Response:
        async def work() -> dict[str, Any]:
            return await api.check(request.headers, await _body(request))

        return _respond(await api.answer("check", work))

    return router
