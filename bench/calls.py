"""Benchmark incoming-call verification end to end: INVITE to a pool number -> matched against
the subscriber's wait_call -> 486 -> the wait confirmed, stored and billed -> the customer's
hook GET; on SQLite and on PostgreSQL.

    python bench/calls.py [--backend sqlite|postgres|both] [--calls 2000] [--window 20]

`kaskad serve` runs with a SIP trunk whose DIDs are the pool; this process first opens one
wait per subscriber through the ssms API (`wait_call`, hook_url = this process), then a child
process plays the subscribers: raw SIP over UDP, `--window` calls in flight, each INVITE from a
waiting subscriber to the pool number they were given, ACKing every 486. Measured: matches per
second (INVITEs answered), INVITE -> 486, and INVITE -> the customer's GET (p50 / p99).
Results go to bench/results/<timestamp>-calls.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as foundation
from ssms import CallbackEndpoint

POOL = [f"7495777{i:04d}" for i in range(50)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ------------------------------------------------------------------ the subscribers (a child)


def _invite(port: int, n: int, caller: str, did: str) -> bytes:
    return ("\r\n".join([
        f"INVITE sip:{did}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcalls{n}",
        "Max-Forwards: 70", f"From: <sip:{caller}@127.0.0.1>;tag=c{n}",
        f"To: <sip:{did}@127.0.0.1>", f"Call-ID: calls-{n}", "CSeq: 1 INVITE",
        "Content-Length: 0", "", ""])).encode()


def _ack(port: int, n: int, caller: str, did: str, response: str) -> bytes:
    to = next(line for line in response.split("\r\n") if line.lower().startswith("to:"))
    return ("\r\n".join([
        f"ACK sip:{did}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKcalls{n}",
        "Max-Forwards: 70", f"From: <sip:{caller}@127.0.0.1>;tag=c{n}", to,
        f"Call-ID: calls-{n}", "CSeq: 1 ACK", "Content-Length: 0", "", ""])).encode()


class _Subscribers(asyncio.DatagramProtocol):
    def __init__(self, calls: list[tuple[str, str]], window: int,
                 target: tuple[str, int]) -> None:
        self.calls, self.window, self.target = calls, window, target
        self.sent_at: dict[int, float] = {}
        self.invite_at: list[float] = [0.0] * len(calls)
        self.answered: list[float] = []
        self.statuses: dict[str, int] = {}
        self.next = 0
        self.done = asyncio.Event()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send_more(self) -> None:
        port = self.transport.get_extra_info("sockname")[1]
        while self.next < len(self.calls) and len(self.sent_at) < self.window:
            caller, did = self.calls[self.next]
            # perf_counter: CLOCK_MONOTONIC, comparable across processes on Linux
            self.sent_at[self.next] = self.invite_at[self.next] = time.perf_counter()
            self.transport.sendto(_invite(port, self.next, caller, did), self.target)
            self.next += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        text = data.decode(errors="replace")
        status = text[8:11]
        if not text.startswith("SIP/2.0 ") or status.startswith("1"):
            return
        call_id = next(line for line in text.split("\r\n") if line.lower().startswith("call-id"))
        n = int(call_id.rsplit("-", 1)[1])
        started = self.sent_at.pop(n, None)
        if started is None:
            return  # a retransmitted final answer
        self.answered.append(time.perf_counter() - started)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        caller, did = self.calls[n]
        port = self.transport.get_extra_info("sockname")[1]
        self.transport.sendto(_ack(port, n, caller, did, text), addr)
        if len(self.answered) == len(self.calls):
            self.done.set()
        self.send_more()


async def _subscribers(calls: list[tuple[str, str]], window: int,
                       target: tuple[str, int]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: _Subscribers(calls, window, target), local_addr=("127.0.0.1", 0))
    started = time.monotonic()
    protocol.send_more()
    await asyncio.wait_for(protocol.done.wait(), timeout=300)
    ms = [x * 1000 for x in protocol.answered]
    return {"seconds": time.monotonic() - started, "invite_at": protocol.invite_at,
            "statuses": protocol.statuses, "answer_p50_ms": percentile(ms, 0.5),
            "answer_p99_ms": percentile(ms, 0.99)}


def _subscribers_process(calls: list[tuple[str, str]], window: int, target: tuple[str, int],
                         out: Connection) -> None:
    out.send(asyncio.run(_subscribers(calls, window, target)))


# ------------------------------------------------------------------ the customer's hook


async def open_waits(port: int, key: str, hook_port: int, count: int) -> list[dict[str, str]]:
    """One wait per subscriber through the ssms API, 16 at a time."""
    out: list[dict[str, str]] = [{}] * count
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not queue.empty():
            i = queue.get_nowait()
            body = urlencode({"method": "wait_call", "format": "json", "key": key,
                              "phone": f"7916{i:07d}", "call_protection": 900,
                              "hook_url": f"http://127.0.0.1:{hook_port}/hook"}).encode()
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                         b"x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            data = json.loads(await reader.readexactly(length))["response"]["data"]
            out[i] = data
        writer.close()

    await asyncio.gather(*(worker() for _ in range(16)))
    return out


async def run_backend(args: argparse.Namespace, name: str, stamp: str) -> dict[str, Any]:
    backend = await foundation.BACKENDS[name](args)
    port, sip_port = foundation.free_port(), foundation.free_port()
    hook = CallbackEndpoint()
    await hook.start()
    config = foundation.RESULTS_DIR / f"{stamp}-{name}-calls.toml"
    config.write_text('[[sip.trunks]]\nname = "bench"\nproxy = {host = "127.0.0.1", port = 9}\n'
                      f"dids = {json.dumps(POOL)}\n")
    server = None
    try:
        base = {"KASKAD_DATABASE_URL": backend.server_url, "KASKAD_LOG_LEVEL": "warning"}
        key = await foundation.setup_database(foundation.clean_env(base))
        await foundation.run_cli(["tariffs", "set", "default", "incoming_call", "RU", "0.50"],
                                 foundation.clean_env(base))
        env = foundation.clean_env({
            **base, "KASKAD_CONFIG": str(config), "KASKAD_TELEPHONY_MODE": "sip",
            "KASKAD_SIP_LISTEN": f"127.0.0.1:{sip_port}", "KASKAD_SMS_MODE": "inprocess",
            "KASKAD_TELEGRAM_MODE": "inprocess", "KASKAD_AUTH_CACHE_TTL_S": "5"})
        server = await foundation.start_server(args, env,
                                               foundation.RESULTS_DIR / f"{stamp}-{name}-calls"
                                               "-server.log", None, port)
        waits = await open_waits(port, key, hook.port, args.calls)
        calls = [(w["waiting_call_from"], w["call_to_number"]) for w in waits]
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_subscribers_process,
                                args=(calls, args.window, ("127.0.0.1", sip_port), send))
        child.start()
        result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            None, receive.recv)
        child.join()
        deadline = time.monotonic() + 60
        while len(hook.times) < len(waits) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        got: dict[str, float] = {}  # id_call -> when its GET arrived (perf_counter)
        for target, at in zip(hook.targets, hook.times, strict=True):
            got.setdefault(parse_qs(urlsplit(target).query).get("id_call", [""])[0], at)
        to_get = [(got[w["id_call"]] - result["invite_at"][i]) * 1000
                  for i, w in enumerate(waits) if w["id_call"] in got]
        return {"backend": name, "calls": len(calls), "window": args.window,
                "matches_per_s": round(len(calls) / result["seconds"]),
                "statuses": result["statuses"],
                "invite_to_486_p50_ms": round(result["answer_p50_ms"], 1),
                "invite_to_486_p99_ms": round(result["answer_p99_ms"], 1),
                "hooks": len(to_get),
                "invite_to_get_p50_ms": round(percentile(to_get, 0.5), 1),
                "invite_to_get_p99_ms": round(percentile(to_get, 0.99), 1),
                "states": await backend.inspector.states(0),
                "ledger": await backend.inspector.ledger(), "problems": server.problems()}
    finally:
        if server is not None:
            await server.stop()
        await hook.stop()
        await backend.dispose(keep=False)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--window", type=int, default=20, help="calls in flight")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = p.parse_args()
    args.profile = None
    return args


def main() -> None:
    args = parse_args()
    foundation.RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [asyncio.run(run_backend(args, n, stamp)) for n in names]
    out = foundation.RESULTS_DIR / f"{stamp}-calls.json"
    out.write_text(json.dumps(results, indent=2))
    print("| backend | calls (in flight) | matches/s | INVITE -> 486 p50 / p99 ms "
          "| INVITE -> customer's GET p50 / p99 ms | hooks | answers |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['calls']} ({r['window']}) | {r['matches_per_s']} | "
              f"{r['invite_to_486_p50_ms']} / {r['invite_to_486_p99_ms']} | "
              f"{r['invite_to_get_p50_ms']} / {r['invite_to_get_p99_ms']} | {r['hooks']} | "
              f"{r['statuses']} |")
    print(f"details: {out.relative_to(foundation.BENCH_DIR.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
