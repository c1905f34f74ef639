"""The HTTP/1.1 client of customer callbacks: keep-alive connections, TLS, one status code.

A callback needs little of HTTP: one request, the answer's status, and the connection back in
the pool. aiohttp's general client cost ~16 % of the whole SMS pipeline's CPU for that
(bench/ssms.py, measured with py-spy); this one writes the request in one piece and reads the
answer with httptools (llhttp, the C parser under uvicorn), which handles Content-Length,
chunked and read-to-close bodies.

Rules:
  * the whole exchange (connect, TLS, request, answer) is bounded by `timeout_s`;
  * the answer's body is read and dropped, at most `max_body_bytes` of it; a longer one closes
    the connection (the status still counts);
  * when a reused idle connection turns out closed by the server before any of an answer came,
    the request goes again on the next idle connection or a new one (a new connection that
    fails is an error);
  * URLs with whitespace or control characters are refused (no header injection);
  * with `refuse_peer`, the address a new connection actually reached is checked before
    anything is sent (callbacks: no private addresses). Checking a name's addresses before
    connecting is not enough: the name is resolved again to connect, and a hostile DNS
    server can answer differently the second time (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

PoolKey = tuple[str, str, int]
# The reason a peer's address may not be talked to, or "" when it may.
PeerCheck = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], str]


class RefusedAddress(ValueError):
    """The connection reached an address the client must not talk to; nothing was sent."""


class _Connection(asyncio.Protocol):
    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None
        self.closed = False
        self.reusable = False
        self._received = 0
        self._body = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(ConnectionError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._finish(ConnectionError(f"malformed HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            status = self.parser.get_status_code() if self._headers_done else 0
            if status:  # an answer read to the connection's end
                self.answer.set_result(status)
            else:
                self.answer.set_exception(ConnectionError("connection closed before an answer"))

    # httptools callbacks
    _headers_done = False

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > self.max_body_bytes:
            self.reusable = False
            status = self.parser.get_status_code()
            self._close()
            if self.answer is not None and not self.answer.done():
                self.answer.set_result(status)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    # ours
    @property
    def fresh_answer(self) -> bool:
        """Nothing of an answer has arrived on this exchange."""
        return self._received == 0

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.reusable = False
        self._received = self._body = 0
        self._headers_done = False
        self.parser = httptools.HttpResponseParser(self)
        self.transport.write(request)
        return self.answer

    def _finish(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)
        self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    def __init__(self, *, timeout_s: float, user_agent: str, max_idle_per_host: int = 64,
                 max_body_bytes: int = 64 * 1024,
                 ssl_context: ssl.SSLContext | None = None,
                 refuse_peer: PeerCheck | None = None) -> None:
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self.max_idle_per_host = max_idle_per_host
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl_context
        self.refuse_peer = refuse_peer
        self._idle: dict[PoolKey, list[_Connection]] = {}

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes = b"") -> int:
        """The answer's status code. Raises ValueError for a URL it cannot send to,
        ConnectionError / OSError for network faults and TimeoutError after `timeout_s`."""
        key, host_header, target = _target(url)
        if any(_unsafe(name) or _unsafe(value) for name, value in headers.items()):
            raise ValueError("header names and values must not contain line breaks")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}",
                 f"User-Agent: {self.user_agent}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        async with asyncio.timeout(self.timeout_s):
            while True:
                conn, reused = await self._connection(key)
                try:
                    status = await conn.send(request)
                except ConnectionError:
                    conn._close()
                    if reused and conn.fresh_answer:
                        continue  # the server had closed it while idle: on another one
                    raise
                except BaseException:
                    conn._close()
                    raise
                if conn.reusable and not conn.closed:
                    self._release(key, conn)
                else:
                    conn._close()
                return status

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn._close()
        self._idle.clear()

    async def _connection(self, key: PoolKey) -> tuple[_Connection, bool]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        scheme, host, port = key
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        transport, conn = await loop.create_connection(
            lambda: _Connection(self.max_body_bytes), host.strip("[]"), port, ssl=context,
            server_hostname=host.strip("[]") if context else None)
        if self.refuse_peer is not None:
            peer = transport.get_extra_info("peername")
            reason = "no peer address" if not peer else self.refuse_peer(
                ipaddress.ip_address(str(peer[0]).split("%", 1)[0]))
            if reason:
                conn._close()
                raise RefusedAddress(reason)
        return conn, False

    def _release(self, key: PoolKey, conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.max_idle_per_host:
            idle.append(conn)
        else:
            conn._close()


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


def _target(url: str) -> tuple[PoolKey, str, str]:
    """(pool key, Host header, request target) of an http(s) URL."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("the URL has whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    if not url.isascii():
        raise ValueError("the URL must be ASCII (percent-encode the rest)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = port == (443 if parts.scheme == "https" else 80)
    host_header = host if default else f"{host}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, host, port), host_header, target
