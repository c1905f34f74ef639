"""Benchmark the whole SMS path: HTTP push_msg -> SMPP submit_sm -> delivery receipt -> state
stored, money captured, status callback delivered; one bind and four binds (window 10 each),
on SQLite and on PostgreSQL.

    python bench/ssms.py [--backend sqlite|postgres|both] [--binds 1,4] [--duration 15]

Processes, all on this machine's two cores: `kaskad simulate smsc` (the SMSC, smpp34's server,
receipts after 10 ms), `kaskad serve` (the gateway, SMS over real SMPP to that SMSC), the load
generator (bench/loadgen.py --api ssms: closed loop, urlencoded push_msg as PHP clients post
it), and this process, which is the customer's status-callback endpoint.

Sustained end-to-end rate = status callbacks received during the load generator's measured
window / its length: each such message was accepted over HTTP, submitted over SMPP, receipted,
stored, captured and called back. For reference, the issue quotes Kannel 1.4.5 at about
2,500 msg/s with one bind and window 10 (SMPP only: no HTTP API, no billing, no callbacks).
Results go to bench/results/<timestamp>-ssms.json.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as foundation

RECEIPT_DELAY_S = "0.01"


class CallbackEndpoint:
    """A minimal HTTP/1.1 keep-alive server that answers 200 and notes when each came."""

    def __init__(self) -> None:
        self.times: list[float] = []  # perf_counter() of each request, in arrival order
        self.targets: list[str] = []  # each request's path and query
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.targets.append(head.split(b" ", 2)[1].decode("latin-1"))
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                self.times.append(time.perf_counter())
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def between(self, start: float, end: float) -> int:
        return bisect.bisect_right(self.times, end) - bisect.bisect_left(self.times, start)


async def start_smsc(port: int, log_path: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kaskad", "simulate", "smsc", "--port", str(port),
        "--receipt-delay", RECEIPT_DELAY_S, stdout=asyncio.subprocess.PIPE,
        stderr=log_path.open("wb"))
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)  # "listening on ..."
    return proc


async def http_get(port: int, path: str) -> bytes:
    """The body of a GET to the server (one connection, closed after the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    return raw.split(b"\r\n\r\n", 1)[1]


async def wait_bound(port: int, limit_s: float = 30.0) -> None:
    """Until /health says every SMPP bind of the SMS channel is up."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        body = json.loads(await http_get(port, "/health"))
        binds = body.get("channel_health", {}).get("sms", {}).get("connectors", {})
        if binds and all(binds.values()):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("the SMPP connector did not bind")


async def run_case(args: argparse.Namespace, backend_name: str, binds: int,
                   stamp: str) -> dict[str, Any]:
    results = foundation.RESULTS_DIR
    backend = await foundation.BACKENDS[backend_name](args)
    smsc_port, port = foundation.free_port(), foundation.free_port()
    tag = f"{stamp}-{backend_name}-{binds}b"
    smsc = await start_smsc(smsc_port, results / f"{tag}-smsc.log")
    endpoint = CallbackEndpoint()
    await endpoint.start()
    config = results / f"{tag}-kaskad.toml"
    config.write_text(
        "[[smpp.connectors]]\n"
        f'name = "bench"\nhost = "127.0.0.1"\nport = {smsc_port}\n'
        f'system_id = "kaskad"\npassword = "secret"\nbinds = {binds}\nwindow = 10\n')
    server = None
    try:
        base = {"KASKAD_DATABASE_URL": backend.server_url, "KASKAD_LOG_LEVEL": "warning"}
        key = await foundation.setup_database(foundation.clean_env(base))
        await foundation.run_cli(["accounts", "settings", "bench",
                                  f"status_url=http://127.0.0.1:{endpoint.port}/dlr"],
                                 foundation.clean_env(base))
        env = foundation.clean_env({
            **base, "KASKAD_CONFIG": str(config), "KASKAD_SMS_MODE": "smpp",
            "KASKAD_TELEGRAM_MODE": "inprocess", "KASKAD_TELEPHONY_MODE": "inprocess",
            "KASKAD_AUTH_CACHE_TTL_S": "5",
            "KASKAD_CALLBACK_CONCURRENCY": "256",
            **dict(item.split("=", 1) for item in args.server_env)})
        profile = results / f"{tag}-cprofile.txt" if args.cprofile else None
        server = await foundation.start_server(args, env, results / f"{tag}-server.log",
                                               profile, port)
        await wait_bound(port)
        cpu_start = _cpu(server.proc.pid, smsc.pid)
        db_start, busy_start = _db_cpu(), foundation.machine_busy()
        load = await foundation.run_loadgen(args, "max", port, key)
        window_end = time.perf_counter()
        cpu_loaded, called_back_loaded = _cpu(server.proc.pid)[0], len(endpoint.times)
        busy_end = foundation.machine_busy()
        window_start = window_end - float(load.get("elapsed_s", args.duration))
        drained = await foundation.drain(backend.inspector, args.drain_timeout)
        rows = await backend.inspector.fetch(
            "SELECT count(*), sum(CASE WHEN state = 'sms' THEN 1 ELSE 0 END), "
            "sum(parts) FROM verifications WHERE kind = 'sms'")
        messages, delivered, parts = (int(x or 0) for x in rows[0])
        deadline = time.monotonic() + 30
        while len(endpoint.times) < delivered and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        cpu_end = _cpu(server.proc.pid, smsc.pid)
        db_end = _db_cpu()
        metrics = await _metrics(port, ("kaskad_write_batches", "kaskad_write_items"))
        in_window = endpoint.between(window_start, window_end)
        span = window_end - window_start
        # Everything the run accepted (warm-up included), from the first request to the last
        # callback: the rate the gateway completes messages at when it is never idle.
        first = window_start - args.warmup
        completed_per_s = round(len(endpoint.times) / (endpoint.times[-1] - first)) \
            if endpoint.times else 0
        return {"backend": backend_name, "binds": binds, "window": 10, "load": load,
                **drained, "messages": messages, "delivered": delivered, "parts": parts,
                "callbacks": len(endpoint.times),
                "e2e_per_s": round(in_window / span) if span else 0,
                "completed_per_s": completed_per_s,
                "http_per_s": load.get("rps"), "http_p99_ms": load.get("p99_ms"),
                # CPU per message, from just before the load until the last callback arrived
                # (includes idle polling while draining, so it is an upper bound)
                "server_cpu_us_per_msg": round((cpu_end[0] - cpu_start[0]) / messages * 1e6)
                if messages else None,
                "smsc_cpu_us_per_msg": round((cpu_end[1] - cpu_start[1]) / messages * 1e6)
                if messages else None,
                # the PostgreSQL server's processes (0 on SQLite: it runs inside the server)
                "db_cpu_us_per_msg": round((db_end - db_start) / messages * 1e6)
                if messages else None,
                # both cores' busy share during the load (100% = the machine is saturated)
                "machine_busy_pct": round(100 * (busy_end[0] - busy_start[0])
                                          / max(1, busy_end[1] - busy_start[1]))
                if busy_start and busy_end else None,
                "writes_per_group_commit": round(
                    metrics["kaskad_write_items"] / metrics["kaskad_write_batches"], 1)
                if metrics.get("kaskad_write_batches") else None,
                **_split_cpu(cpu_start[0], cpu_loaded, cpu_end[0], messages,
                             called_back_loaded),
                "ledger": await backend.inspector.ledger(), "problems": server.problems()}
    finally:
        if server is not None:
            await server.stop()
        await endpoint.stop()
        smsc.terminate()
        await smsc.wait()
        await backend.dispose(keep=False)


async def _metrics(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Some of the server's Prometheus gauges."""
    out = {}
    for line in (await http_get(port, "/metrics")).decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[name] = float(value)
    return out


def _cpu(*pids: int) -> tuple[float, ...]:
    """CPU seconds of each process with its live children (KASKAD_WORKERS's processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return tuple(sum(foundation.cpu_seconds(p) or 0.0 for p in (pid, *children.get(pid, ())))
                 for pid in pids)


def _db_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on this machine so far (a process's
    time is counted once it has exited only through its parent, so backends that come and
    go during a run are undercounted; the gateway's connections live for the whole run)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += foundation.cpu_seconds(int(entry.name)) or 0.0
            except OSError:
                continue
    return total


def _split_cpu(start: float, loaded: float, end: float, messages: int,
               done_under_load: int) -> dict[str, int | None]:
    """Server CPU per message split into the HTTP intake and the rest of the pipeline:
    after the load only the pipeline runs (its cost per message is measured there), so the
    load phase's CPU minus the pipeline's share of it is the intake's."""
    left = messages - done_under_load
    if left <= 0 or messages <= 0:
        return {"pipeline_cpu_us_per_msg": None, "intake_cpu_us_per_msg": None}
    pipeline = (end - loaded) / left
    intake = (loaded - start - pipeline * done_under_load) / messages
    return {"pipeline_cpu_us_per_msg": round(pipeline * 1e6),
            "intake_cpu_us_per_msg": round(intake * 1e6)}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--binds", default="1,4")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--server-env", action="append", default=[], metavar="KASKAD_X=VALUE",
                   help="a setting for the gateway under test (repeatable)")
    p.add_argument("--cprofile", action="store_true",
                   help="run the server under cProfile (slower); the report goes next to the "
                        "results as <stamp>-<backend>-<binds>b-cprofile.txt")
    args = p.parse_args()
    # what bench/run.py's load-generator plumbing reads
    args.max_duration, args.max_connections = args.duration, args.connections
    args.warmup, args.fallback_share, args.grace = 2.0, 0.0, 5.0
    args.profile = None
    return args


def main() -> None:
    args = parse_args()
    foundation.RESULTS_DIR.mkdir(exist_ok=True)
    foundation.LOADGEN_EXTRA = ["--api", "ssms"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [asyncio.run(run_case(args, n, int(b), stamp))
               for n in names for b in args.binds.split(",")]
    out = foundation.RESULTS_DIR / f"{stamp}-ssms.json"
    out.write_text(json.dumps(results, indent=2))
    print("| backend | binds x window | push_msg accepted/s (HTTP p99 ms) | called back/s "
          "during the load | completed/s overall | messages | delivered | callbacks "
          "| unfinished | charged = parts x 3.50 | server / SMSC / DB CPU per message "
          "| machine busy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ok = r["ledger"]["charged_kop"] == r["parts"] * 350 and r["ledger"]["held_kop"] == 0
        print(f"| {r['backend']} | {r['binds']} x {r['window']} | {r['http_per_s']} "
              f"({r['http_p99_ms']}) | {r['e2e_per_s']} | {r['completed_per_s']} "
              f"| {r['messages']} | {r['delivered']} "
              f"| {r['callbacks']} | {r['unfinished_left']} | {'yes' if ok else 'NO'} "
              f"| {r['server_cpu_us_per_msg']} / {r['smsc_cpu_us_per_msg']} / "
              f"{r['db_cpu_us_per_msg']} µs | {r['machine_busy_pct']} % |")
    print(f"details: {out.relative_to(foundation.BENCH_DIR.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
