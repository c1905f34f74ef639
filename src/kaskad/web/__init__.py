"""The customer cabinet (/cabinet/) and the operator's admin pages (/admin/): server-rendered
Jinja2 pages, Russian first with English, mounted on the FastAPI app by `install`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from kaskad.bootstrap import Gateway
from kaskad.web import admin, auth, cabinet, history, settings_page
from kaskad.web.core import LoginRequired, Web, WebError, redirect

PREFIXES = ("/cabinet", "/admin")
STATIC = Path(__file__).parent / "static"


def is_web_path(path: str) -> bool:
    return path.startswith(PREFIXES)


def install(app: FastAPI, gw: Gateway) -> Web:
    """Add the pages, their static files and their error pages to `app`."""
    web = Web(gw)
    app.mount("/cabinet/static", StaticFiles(directory=STATIC), name="cabinet-static")
    for module in (auth, cabinet, settings_page, history, admin):
        app.include_router(module.build_router(web))

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> Response:
        return await web.error_page(request, exc.status, exc.key)

    @app.exception_handler(LoginRequired)
    async def _login(_: Request, exc: LoginRequired) -> Response:
        return redirect("/cabinet/login")

    app.state.web = web
    return web


async def error_page(request: Request, status: int) -> Response:
    """The page for an error raised outside our handlers (404 of an unknown path, 405, 500)."""
    web: Web = request.app.state.web
    key = {404: "error.404", 405: "error.404", 403: "error.403"}.get(status, "error.500")
    return await web.error_page(request, status, key)
