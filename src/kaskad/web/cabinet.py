"""The cabinet's overview (balance and charts) and API keys."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from kaskad.domain.errors import NotFound
from kaskad.storage import accounts as repo
from kaskad.storage import cabinet as queries
from kaskad.storage.cabinet import DAY_MS
from kaskad.web import charts
from kaskad.web.core import Web, WebError, redirect
from kaskad.web.i18n import text

CHART_DAYS = 30


async def overview_data(web: Web, account_id: int, lang: str) -> dict[str, object]:
    now = web.now_ms()
    offset = int(datetime.now(web.tz).utcoffset().total_seconds() * 1000)  # type: ignore[union-attr]
    today = (now + offset) // DAY_MS
    days, labels = charts.day_range(today, CHART_DAYS, offset)
    since = days[0] * DAY_MS - offset
    async with web.gw.db.read() as conn:
        account = await repo.get_account(conn, account_id)
        spent = await repo.spent(conn, account_id)
        per_day = await queries.per_day(conn, account_id, since, offset)
        times = await queries.delivery_times(conn, account_id, since, offset)
        charges = await queries.delivered_charges(conn, account_id, since, offset)
        table = {(account.tariff_plan, ch, d): p
                 for d, ch, p in await repo.plan_tariffs(conn, account.tariff_plan)}
    o = charts.build(days, labels, per_day, times, charges,
                     lambda direction: repo.price_in(table, account.tariff_plan, "sms",
                                                     direction))
    names = {c: text(f"ch.{c}", lang) for c in (*charts.CHANNEL_ORDER, "none")}
    series = o.chart_data(names)
    series["titles"] = {k: text(f"chart.{k}", lang) for k in ("rate", "median", "saved")}
    return {"account": account, "spent": spent, "o": o, "days": CHART_DAYS,
            "chart_json": json.dumps(series, ensure_ascii=False)}


def build_router(web: Web) -> APIRouter:
    router = APIRouter(prefix="/cabinet", include_in_schema=False)

    @router.get("/")
    async def overview(request: Request) -> Response:
        session = await web.user(request)
        lang = await web.lang(request, session)
        data = await overview_data(web, session.account_id, lang)
        return await web.render(request, "overview.html", data, session=session)

    async def keys_page(request: Request, errors: dict[str, str], new_key: str | None,
                        status: int = 200) -> Response:
        session = await web.user(request)
        async with web.gw.db.read() as conn:
            keys = await repo.list_api_keys(conn, session.account_id)
        return await web.render(request, "keys.html", {
            "keys": keys, "errors": errors, "new_key": new_key}, status=status,
            session=session)

    @router.get("/keys")
    async def keys(request: Request) -> Response:
        return await keys_page(request, {}, None)

    @router.post("/keys")
    async def create_key(request: Request) -> Response:
        session = await web.user(request)
        fields = await web.form(request, session)
        name = fields.get("name", "").strip()
        if len(name) > 100:
            return await keys_page(request, {"name": "err.key_name"}, None, status=400)
        async with web.gw.db.write() as conn:
            key = await repo.create_api_key(conn, session.account_id, name, web.now_ms())
        # Shown in this answer only: the key itself is never stored, only its hash.
        return await keys_page(request, {}, key)

    @router.post("/keys/{key_id}/revoke")
    async def revoke_key(request: Request, key_id: str) -> Response:
        session = await web.user(request)
        await web.form(request, session)
        if not key_id.isdigit() or len(key_id) > 18:
            raise WebError(404, "error.404")
        try:
            async with web.gw.db.write() as conn:
                await repo.revoke_api_key(conn, session.account_id, int(key_id), web.now_ms())
        except NotFound as exc:  # another account's key, or revoked already
            raise WebError(404, "error.404") from exc
        web.gw.auth.invalidate()  # the key stops working now, not after the cache's TTL
        return redirect("/cabinet/keys")

    return router
