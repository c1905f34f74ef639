"""Operations endpoints: readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from kaskad.api.errors import json_response
from kaskad.bootstrap import Gateway


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter()

    @router.get("/health", summary="200 when the gateway is ready")
    async def health() -> Response:
        if not gw.started:
            return json_response({"status": "starting"}, 503)
        try:
            async with gw.db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return json_response({"status": "database unavailable", "error": type(exc).__name__},
                                 503)
        channels = await gw.channel_status()
        degraded = sorted(name for name, c in channels.items() if not c["healthy"])
        return json_response({"status": "ok", "node": gw.settings.node_id,
                              "channels": sorted(channels), "channel_health": channels,
                              "degraded": degraded})

    @router.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        gw.refresh_gauges()
        await gw.channel_status()
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
