"""The cabinet's history of codes, messages and call waits, and one request's detail: the
timeline of attempts, the ledger rows and the callbacks. Always scoped to the session's account:
another account's request id answers 404, exactly like one that does not exist."""

from __future__ import annotations

import re
from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.domain.cascade import State
from kaskad.storage import cabinet as queries
from kaskad.storage.cabinet import HistoryFilter
from kaskad.storage.verifications import get_verification, list_attempts
from kaskad.web.charts import CHANNEL_ORDER
from kaskad.web.core import Web, WebError

PAGE_SIZE = 50
KINDS = ("code", "sms", "call")
REQUEST_ID = re.compile(r"^[0-9a-zA-Z_-]{1,32}$")


def parse_filter(web: Web, query: dict[str, str]) -> tuple[HistoryFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    bounds: dict[str, int | None] = {"from": None, "to": None}
    for name in bounds:
        raw = query.get(name, "").strip()
        if not raw:
            continue
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            errors[name] = "err.date"
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=web.tz).timestamp() * 1000
        bounds[name] = int(start) + (86_400_000 if name == "to" else 0)
    channel = query.get("channel", "")
    state = query.get("state", "")
    kind = query.get("kind", "")
    return HistoryFilter(
        since_ms=bounds["from"], until_ms=bounds["to"],
        number=re.sub(r"\D", "", query.get("number", ""))[:16],
        channel=channel if channel in (*CHANNEL_ORDER, "none") else "",
        state=state if state in {s.value for s in State} else "",
        kind=kind if kind in KINDS else ""), errors


def build_router(web: Web) -> APIRouter:
    router = APIRouter(prefix="/cabinet", include_in_schema=False)

    @router.get("/history")
    async def history(request: Request) -> Response:
        session = await web.user(request)
        query = dict(request.query_params)
        f, errors = parse_filter(web, query)
        raw_page = query.get("page", "1")
        page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 100_000 else 1
        async with web.gw.db.read() as conn:
            rows = await queries.history(conn, session.account_id, f, limit=PAGE_SIZE,
                                         offset=(page - 1) * PAGE_SIZE)
        more = len(rows) > PAGE_SIZE
        keep = {k: v for k, v in query.items() if k not in ("page", "lang") and v}
        return await web.render(request, "history.html", {
            "rows": rows[:PAGE_SIZE], "q": query, "errors": errors, "page": page,
            "prev_url": f"?{urlencode(keep | {'page': page - 1})}" if page > 1 else None,
            "next_url": f"?{urlencode(keep | {'page': page + 1})}" if more else None,
            "channels": CHANNEL_ORDER, "states": [s.value for s in State], "kinds": KINDS},
            session=session)

    @router.get("/history/{request_id}")
    async def detail(request: Request, request_id: str) -> Response:
        session = await web.user(request)
        if not REQUEST_ID.match(request_id):
            raise WebError(404, "error.404")
        async with web.gw.db.read() as conn:
            v = await get_verification(conn, request_id, session.account_id)
            if v is None:
                raise WebError(404, "error.404")
            attempts = await list_attempts(conn, request_id)
            costs = await queries.ledger_for(conn, session.account_id, request_id)
            callbacks = await queries.callbacks_for(conn, session.account_id, request_id)
        return await web.render(request, "detail.html", {
            "v": v, "attempts": attempts, "costs": costs, "callbacks": callbacks},
            session=session)

    return router
