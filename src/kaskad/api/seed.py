"""The seed 002 API: POST /api/send/ and our status lookup, byte-compatible with its clients."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from kaskad.api.errors import json_response, seed_error
from kaskad.bootstrap import Gateway
from kaskad.domain.clock import seed_date
from kaskad.domain.errors import BadRequest, KaskadError, NotFound
from kaskad.domain.money import format_rub
from kaskad.services.send_code import SendCodeInput
from kaskad.storage.verifications import Verification, get_verification

SEND_FIELDS = frozenset({"apiKey", "number", "resending", "code_length", "code", "callback_url",
                         "security"})
STATUS_FIELDS = frozenset({"apiKey", "request_id", "security"})


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


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "ok, or an error in the seed's shape",
          "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/SendOk"},
              {"$ref": "#/components/schemas/SeedError"}]}}}},
    413: {"description": "body too large", "model": SeedError},
}


async def read_json(request: Request, limit: int, allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object of the body, capped at `limit` bytes; any fault is unknown_request."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge()
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    try:
        data = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body is not JSON in UTF-8") from exc
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(f"unknown fields: {sorted(unknown)}")
    return data


class _TooLarge(BadRequest):
    pass


def api_key_of(request: Request, body: dict[str, Any]) -> object:
    """The key from the Authorization header ("KEY" or "Bearer KEY"), else from the JSON."""
    header = request.headers.get("authorization")
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


def render(v: Verification, *, with_date: bool = False, tz: str = "UTC") -> dict[str, Any]:
    out: dict[str, Any] = {
        "result": "ok", "state": v.state.value, "state_reason": v.state_reason,
        "resend": v.resend, "number": v.number, "code": v.code,
        "price": format_rub(v.current_price), "request_id": v.request_id,
    }
    if with_date:
        out["date"] = seed_date(v.finished_at or v.updated_at, tz)
    return out


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter()
    metrics = gw.metrics
    limit = gw.settings.max_body_bytes

    async def _answer(endpoint: str, request: Request, handler: Any) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
            result = "ok"
        except _TooLarge:
            response, result = seed_error(BadRequest(), 413), "unknown_request"
        except KaskadError as exc:
            response, result = seed_error(exc), exc.code
        metrics.api_requests.labels(endpoint, result).inc()
        metrics.api_latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def _send(request: Request) -> Response:
        body = await read_json(request, limit, SEND_FIELDS)
        v = await gw.send_code(SendCodeInput(
            api_key=api_key_of(request, body), number=body.get("number"),
            resending=body.get("resending"), code_length=body.get("code_length"),
            code=body.get("code"), callback_url=body.get("callback_url")))
        return json_response(render(v))

    async def _status(request: Request) -> Response:
        if request.method == "GET":
            body: dict[str, Any] = {k: v for k, v in request.query_params.items()
                                    if k in STATUS_FIELDS}
        else:
            body = await read_json(request, limit, STATUS_FIELDS)
        account_id = await gw.auth.account_for(api_key_of(request, body))
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 32:
            raise BadRequest("request_id is required")
        async with gw.db.read() as conn:
            v = await get_verification(conn, request_id, account_id)
        if v is None:
            raise NotFound(request_id)
        return json_response(render(v, with_date=True, tz=gw.settings.timezone))

    @router.post("/api/send/", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}}}}},
        responses=_ANSWERS, response_model=None, summary="Send a verification code")
    async def send(request: Request) -> Response:
        """Telegram first, then `resending` (seed 002). The answer tells the first step's
        outcome (or `pending` after `send_wait_s`); the final state goes to `callback_url`."""
        return await _answer("send", request, _send)

    @router.api_route("/api/status/", methods=["GET", "POST"], response_model=None,
                      responses={200: {"description": "state, or an error", "content": {
                          "application/json": {"schema": {"anyOf": [
                              {"$ref": "#/components/schemas/StatusOk"},
                              {"$ref": "#/components/schemas/SeedError"}]}}}}},
                      summary="Read a request's state by request_id")
    async def status(request: Request) -> Response:
        return await _answer("status", request, _status)

    return router


MODELS = (SendRequest, SendOk, StatusOk, SeedError)
