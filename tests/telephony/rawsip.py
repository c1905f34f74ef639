"""A raw UDP SIP peer for the tests: literal request text, no SIP library on this side."""

from __future__ import annotations

import asyncio
from typing import Any


class RawPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes | str, dest: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data.encode() if isinstance(data, str) else data, dest)

    async def next(self, within: float = 5.0) -> str:
        async with asyncio.timeout(within):
            return (await self.received.get()).decode(errors="replace")

    async def next_status(self, within: float = 5.0) -> int:
        text = await self.next(within)
        assert text.startswith("SIP/2.0 "), text
        return int(text.split()[1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def raw_peer() -> RawPeer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=("127.0.0.1", 0))
    return peer


def invite(peer_port: int, to: str, *, branch: str = "z9hG4bKraw1", call_id: str = "raw-1",
           caller: str = "+7(916)123-45-67", pai: str | None = None) -> str:
    lines = [
        f"INVITE sip:{to}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer_port};branch={branch}",
        "Max-Forwards: 70",
        f"From: <sip:{caller}@127.0.0.1>;tag=raw",
        f"To: <sip:{to}@127.0.0.1>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:x@127.0.0.1:{peer_port}>",
    ]
    if pai:
        lines.append(f"P-Asserted-Identity: <tel:{pai}>")
    return "\r\n".join([*lines, "Content-Length: 0", "", ""])


def ack(peer_port: int, to: str, to_tag: str, *, branch: str = "z9hG4bKraw1",
        call_id: str = "raw-1", caller: str = "+7(916)123-45-67") -> str:
    return "\r\n".join([
        f"ACK sip:{to}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer_port};branch={branch}",
        "Max-Forwards: 70",
        f"From: <sip:{caller}@127.0.0.1>;tag=raw",
        f"To: <sip:{to}@127.0.0.1>;tag={to_tag}",
        f"Call-ID: {call_id}",
        "CSeq: 1 ACK",
        "Content-Length: 0", "", ""])


def to_tag(response: str) -> str:
    for line in response.split("\r\n"):
        if line.lower().startswith("to:") and "tag=" in line:
            return line.split("tag=")[1].split(";")[0].strip()
    raise AssertionError(f"no To tag in {response!r}")
