"""Small helpers shared by tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiohttp import web

from kaskad.engine.callbacks import Transport


def callback_transport(handle: Callable[[httpx.Request], httpx.Response]) -> Transport:
    """Deliver the gateway's customer callbacks to an in-memory receiver (no network) that
    sees them as httpx requests."""

    async def send(method: str, url: str, headers: dict[str, str], body: bytes) -> int:
        return handle(httpx.Request(method, url, headers=headers, content=body)).status_code

    return send


def recording_transport(into: list[Any],
                        pick: Callable[[httpx.Request], Any] = lambda r: r) -> Transport:
    """A callback_transport that answers 200 to every callback and appends `pick(request)`
    to `into`."""

    def handle(request: httpx.Request) -> httpx.Response:
        into.append(pick(request))
        return httpx.Response(200)

    return callback_transport(handle)


async def serve_aiohttp(path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> tuple[web.AppRunner, int]:
    """An aiohttp.web server (an independent HTTP implementation) on a free loopback port,
    answering `path` for every method with `handler`: its runner (`cleanup()` stops it) and
    its port."""
    app = web.Application()
    app.router.add_route("*", path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])
