"""Translate kaskad errors to the seed API's error shape at the edge."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from kaskad.domain.errors import BadRequest, KaskadError

JSON = "application/json; charset=utf-8"


def json_response(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def seed_error_payload(exc: KaskadError) -> dict[str, str]:
    code = exc.code if exc.code != "internal" else BadRequest.code
    return {"result": "error", "error_code": code}


def seed_error(exc: KaskadError, status: int = 200) -> Response:
    """`{"result": "error", "error_code": ...}`. API errors answer HTTP 200, as the seed's
    PHP clients expect; only transport-level faults (404, 405, 413) use other statuses."""
    return json_response(seed_error_payload(exc), status)
