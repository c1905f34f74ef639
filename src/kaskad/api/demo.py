"""The demo's callback inbox: a place for the printed curl's callbacks to land and be read."""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.api.errors import json_response


def build_router(limit: int = 200) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    received: deque[dict[str, Any]] = deque(maxlen=limit)

    @router.post("/demo/callbacks")
    async def receive(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw[:2000].decode("utf-8", "replace")
        received.append({
            "event_id": request.headers.get("x-kaskad-event-id"),
            "timestamp": request.headers.get("x-kaskad-timestamp"),
            "signature": request.headers.get("x-kaskad-signature"),
            "body": body,
            "raw": raw[:4000].decode("utf-8", "replace"),  # what the signature covers
        })
        return json_response({"ok": True})

    @router.get("/demo/hook")
    async def hook(request: Request) -> Response:
        """wait_call's notification is a GET: its facts are in the query."""
        received.append({"event_id": request.headers.get("x-kaskad-event-id"),
                         "method": "GET", "query": dict(request.query_params)})
        return json_response({"ok": True})

    @router.get("/demo/callbacks")
    async def show() -> Response:
        return json_response(list(received))

    return router
