"""The HTTP application: every route, with errors translated to the seed's shape."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from kaskad import __version__, web
from kaskad.api import demo, ops, sandbox, seed, webhooks
from kaskad.api.compat import ssms
from kaskad.api.errors import json_response, seed_error
from kaskad.bootstrap import SIMULATOR_PATH, Gateway
from kaskad.domain.errors import BadRequest

log = structlog.get_logger(__name__)


def create_app(gw: Gateway, *, demo_inbox: bool = False, manage_gateway: bool = True) -> Any:
    """The ASGI application: FastAPI for everything, with the seed API's hot paths answered
    by `seed.FastPaths` in front of it. `.fastapi` is the FastAPI app (OpenAPI, routes)."""
    api = seed.SeedApi(gw)
    app = _fastapi_app(gw, api, demo_inbox=demo_inbox, manage_gateway=manage_gateway)
    root = ssms.SsmsApi(gw)
    front = seed.FastPaths(app, api, functools.partial(ssms.serve, root))
    front.fastapi = app  # type: ignore[attr-defined]
    return front


def _fastapi_app(gw: Gateway, api: seed.SeedApi, *, demo_inbox: bool,
                 manage_gateway: bool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_gateway:
            await gw.start(engine=gw.settings.engine)
        try:
            yield
        finally:
            if manage_gateway:
                await gw.stop()

    app = FastAPI(title="kaskad", version=__version__, lifespan=lifespan,
                  description="Verification codes through the cheapest channel that reaches "
                              "the subscriber: Telegram Gateway, then SMS, voice or flash call.")
    app.include_router(seed.build_router(api))
    app.include_router(ops.build_router(gw))
    app.include_router(webhooks.build_router(gw))
    if gw.telegram_sim is not None:  # the built-in Telegram Gateway, reached over HTTP
        app.mount(SIMULATOR_PATH, gw.telegram_sim.app)
    if demo_inbox:
        app.include_router(demo.build_router())
    if gw.sandbox_calls:  # the sandbox's subscribers can be asked to call a pool number
        app.include_router(sandbox.build_router(gw))
    web.install(app, gw)  # the cabinet and the admin pages: HTML, with HTML error pages

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if web.is_web_path(request.url.path):
            return await web.error_page(request, exc.status_code)
        return seed_error(BadRequest(str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return seed_error(BadRequest("invalid request"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path)
        if web.is_web_path(request.url.path):
            return await web.error_page(request, 500)
        return json_response({"result": "error", "error_code": "temporarily_unavailable"}, 503)

    _document_models(app)
    return app


def _document_models(app: FastAPI) -> None:
    """Add the hand-parsed bodies' schemas to the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in seed.MODELS:
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
