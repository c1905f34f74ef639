"""Drives tests/peers/pjsua_peer.py (PJSIP, an independent SIP stack) from async tests."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

PEER = Path(__file__).resolve().parents[1] / "peers" / "pjsua_peer.py"
Event = dict[str, Any]


class PjsuaPeer:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[Event] = []
        self.ports: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("{"):
                continue  # pjlib's own start-up chatter
            event = json.loads(line)
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Event], bool], within: float = 15.0) -> Event:
        """The first event (already seen or to come) matching the predicate."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: any(predicate(e) for e in self.events))
            return next(e for e in self.events if predicate(e))

    def matching(self, predicate: Callable[[Event], bool]) -> list[Event]:
        return [e for e in self.events if predicate(e)]

    async def call(self, uri: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": "call", "uri": uri}).encode() + b"\n")
        await self.process.stdin.drain()

    @property
    def udp(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["udp"])

    @property
    def tcp(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["tcp"])


@contextlib.asynccontextmanager
async def pjsua_peer(mode: str = "answer", user: str = "79161234567") -> AsyncIterator[PjsuaPeer]:
    """Start the peer; a missing pjsua2 fails the test (the suite never skips its peers)."""
    if importlib.util.find_spec("pjsua2") is None:
        raise RuntimeError("pjsua2 is not installed: `pip install pjsua2-python` (dev extra)")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), "--mode", mode, "--user", user,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    peer = PjsuaPeer(process)
    try:
        ready = await peer.wait_for(lambda e: e["event"] == "ready", within=20)
        peer.ports = {"udp": ready["udp"], "tcp": ready["tcp"]}
        yield peer
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        peer._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await peer._reader
