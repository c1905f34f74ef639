"""Provider webhooks: delivery reports that providers POST to us.

Telegram Gateway reports carry no event id and are retried until they get HTTP 200, so a report
is verified (HMAC over `timestamp\\n body`, keyed with SHA-256 of our token; stale timestamps
refused), de-duplicated by the channel, then answered 200. Refusals are 403/400 with the
gateway's own envelope shape, and never reach the cascade.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.api.errors import json_response
from kaskad.bootstrap import TELEGRAM_WEBHOOK_PATH, Gateway
from kaskad.channels.telegram.client import RequestStatus, parse_json
from kaskad.domain.telegram import ReportCheck, check_report

log = structlog.get_logger(__name__)

MAX_REPORT_BYTES = 16 * 1024


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post(TELEGRAM_WEBHOOK_PATH)
    async def telegram_report(request: Request) -> Response:
        channel = gw.telegram
        if channel is None:
            return json_response({"ok": False, "error": "TELEGRAM_NOT_CONFIGURED"}, 404)
        body = await request.body()
        if len(body) > MAX_REPORT_BYTES:
            return json_response({"ok": False, "error": "REPORT_TOO_LARGE"}, 413)
        verdict = check_report(channel.client.token, request.headers.get("x-request-timestamp"),
                               request.headers.get("x-request-signature"), body, gw.clock(),
                               gw.settings.telegram_report_window_s)
        if verdict is not ReportCheck.OK:
            log.warning("Telegram report refused", reason=verdict.value,
                        client=request.client.host if request.client else None)
            return json_response({"ok": False, "error": verdict.value}, 403)
        try:
            status = RequestStatus.parse(parse_json(body))
        except ValueError:
            return json_response({"ok": False, "error": "not a RequestStatus"}, 400)
        disposition = await channel.handle_report(status)
        return json_response({"ok": True, "result": disposition}, 200)

    return router
