"""The callbacks' HTTP client against real servers on loopback: aiohttp.web (an independent
HTTP implementation), and raw sockets for what well-behaved servers never do."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from kaskad.engine.http_client import HttpClient, RefusedAddress

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        runners.append(runner)
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_post_arrives_whole_and_the_connection_is_reused(
        serve: Callable[..., Awaitable[int]]) -> None:
    seen: list[tuple[str, str, str, dict[str, str], bytes]] = []
    peers: set[object] = set()

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, request.query_string, dict(request.headers),
                     await request.read()))
        peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        return web.Response(status=201, text="created")

    port = await serve(handler)
    client = HttpClient(timeout_s=5, user_agent="kaskad-test/1")
    try:
        for i in range(3):
            status = await client.request("POST", f"http://127.0.0.1:{port}/hook?n={i}",
                                          {"X-Event": f"e{i}"}, b'{"x": 1}')
            assert status == 201
        assert await client.request("GET", f"http://127.0.0.1:{port}/get", {}) == 201
    finally:
        await client.close()
    assert [s[0] for s in seen] == ["POST", "POST", "POST", "GET"]
    _, path, query, headers, body = seen[2]
    assert (path, query, body, headers["X-Event"]) == ("/hook", "n=2", b'{"x": 1}', "e2")
    assert headers["Host"] == f"127.0.0.1:{port}" and headers["User-Agent"] == "kaskad-test/1"
    assert len(peers) == 1  # one keep-alive connection for all four


async def test_chunked_and_oversized_answers(serve: Callable[..., Awaitable[int]]) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=202 if request.path == "/small" else 500)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(3 if request.path == "/small" else 200):
            await response.write(b"x" * 1024)
        await response.write_eof()
        return response

    port = await serve(handler)
    client = HttpClient(timeout_s=5, user_agent="t", max_body_bytes=16 * 1024)
    try:
        assert await client.request("POST", f"http://127.0.0.1:{port}/small", {}, b"") == 202
        assert await client.request("POST", f"http://127.0.0.1:{port}/big", {}, b"") == 500
        assert await client.request("POST", f"http://127.0.0.1:{port}/small", {}, b"") == 202
    finally:
        await client.close()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[int]]]:
    """Plain asyncio servers whose connections are all closed before the loop ends."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(answer: RawHandler) -> int:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await answer(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
    for writer in writers:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def test_a_connection_closed_while_idle_is_retried_once_on_a_new_one(
        raw_server: Callable[[RawHandler], Awaitable[int]]) -> None:
    connections = 0

    async def answer_once_then_close(reader: asyncio.StreamReader,
                                     writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # keep-alive, then not
        await writer.drain()

    port = await raw_server(answer_once_then_close)
    client = HttpClient(timeout_s=5, user_agent="t")
    try:
        for _ in range(3):
            assert await client.request("POST", f"http://127.0.0.1:{port}/", {}, b"{}") == 200
    finally:
        await client.close()
    assert connections == 3


async def test_read_to_close_answers_timeouts_and_garbage(
        raw_server: Callable[[RawHandler], Awaitable[int]]) -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.0 204 No Content\r\n\r\n")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await reader.read()  # until the client gives up and hangs up

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    client = HttpClient(timeout_s=0.3, user_agent="t")
    ports = [await raw_server(h) for h in (http10, silent, garbage)]
    try:
        assert await client.request("POST", f"http://127.0.0.1:{ports[0]}/", {}, b"") == 204
        with pytest.raises(TimeoutError):
            await client.request("POST", f"http://127.0.0.1:{ports[1]}/", {}, b"")
        with pytest.raises(ConnectionError):
            await client.request("POST", f"http://127.0.0.1:{ports[2]}/", {}, b"")
    finally:
        await client.close()


async def test_unsendable_urls_and_headers_are_refused_before_connecting() -> None:
    client = HttpClient(timeout_s=1, user_agent="t")
    for url in ("ftp://example.org/", "http:///nohost", "http://a.example/x y",
                "http://a.example/\r\nX-Evil: 1", "http://a.example:99999/"):
        with pytest.raises(ValueError):
            await client.request("POST", url, {}, b"")
    with pytest.raises(ValueError):
        await client.request("POST", "http://127.0.0.1:9/", {"X": "a\r\nX-Evil: 1"}, b"")


async def test_https_with_the_callers_trust(serve: Callable[..., Awaitable[int]],
                                            tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=200, text="ok")

    port = await serve(handler, server_side)
    trusting = HttpClient(timeout_s=5, user_agent="t",
                          ssl_context=ssl.create_default_context(cafile=str(cert)))
    default = HttpClient(timeout_s=5, user_agent="t")  # the system's CAs: not this one
    try:
        assert await trusting.request("POST", f"https://127.0.0.1:{port}/h", {}, b"") == 200
        with pytest.raises(ssl.SSLError):
            await default.request("POST", f"https://127.0.0.1:{port}/h", {}, b"")
    finally:
        await trusting.close()
        await default.close()


async def test_a_refused_peer_address_gets_nothing(serve: Callable[..., Awaitable[int]]) -> None:
    """The address check runs on the address the connection reached, before any byte is
    sent: a name that resolved to a public address for the check and to a private one for
    the connection (DNS rebinding) cannot smuggle a request through."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    port = await serve(handler)
    checked: list[str] = []

    def refuse_loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        checked.append(str(ip))
        return f"private address {ip}" if ip.is_loopback else ""

    client = HttpClient(timeout_s=5, user_agent="t", refuse_peer=refuse_loopback)
    try:
        with pytest.raises(RefusedAddress, match=r"127\.0\.0\.1"):
            await client.request("POST", f"http://localhost:{port}/hook", {}, b"{}")
        with pytest.raises(RefusedAddress):  # refused connections are not pooled
            await client.request("POST", f"http://127.0.0.1:{port}/hook", {}, b"{}")
    finally:
        await client.close()
    await asyncio.sleep(0.05)
    assert seen == [] and checked == ["127.0.0.1", "127.0.0.1"]
    allowed = HttpClient(timeout_s=5, user_agent="t", refuse_peer=lambda ip: "")
    try:
        assert await allowed.request("GET", f"http://127.0.0.1:{port}/ok", {}) == 200
    finally:
        await allowed.close()
    assert seen == ["/ok"]
