"""aiosipua's UDP and TCP transports with two defects of 0.7.1 fixed.

- UDP: its protocol asserts the transport is an asyncio.DatagramTransport, which CPython 3.11's
  selector datagram transport is not (it only became a subclass in 3.12), so every start logged
  an AssertionError from connection_made. Ours skips that check.
- TCP: a connection we opened was dropped from the table on EOF without closing its writer, so
  the socket leaked (ResourceWarning when collected). Ours closes it, and stop() waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiosipua.transport import TcpSipTransport, UdpSipTransport


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._dispatch(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        return None  # ICMP port unreachable for a peer that went away: timers handle it


class UdpTransport(UdpSipTransport):
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                           local_addr=self.local_addr)
        self._udp_transport = transport  # type: ignore[assignment]

    @property
    def bound_port(self) -> int:
        assert self._udp_transport is not None
        return int(self._udp_transport.get_extra_info("sockname")[1])


class TcpTransport(TcpSipTransport):
    async def _handle_incoming(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter, addr: tuple[str, int]) -> None:
        try:
            await super()._handle_incoming(reader, writer, addr)
        finally:
            writer.close()

    async def stop(self) -> None:
        writers = [writer for _, writer in self._connections.values()]
        await super().stop()
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @property
    def bound_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])
