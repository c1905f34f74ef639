"""Benchmark the Telegram channel's fallback: a number without Telegram must reach its SMS
attempt at once, with no timeout wait. Target: p99 of (API call -> fallback attempt) <= 50 ms.

    python bench/telegram.py [--backend sqlite|postgres|both] [--rate 200] [--duration 20]

The production path, over loopback: `kaskad simulate telegram` runs the Telegram Gateway
simulator in its own process; `kaskad serve` talks to it with the real client (checkSendAbility,
which answers PHONE_NUMBER_NOT_FOUND for these numbers) and then sends the SMS. Every request
uses a different number, so the cache of negative answers never short-cuts the HTTP call.

Measured per request from the database: `attempts.started_at` of the SMS step minus
`verifications.created_at` (the request's arrival, stored by the API), plus the load
generator's own answer latencies (the API answers once Telegram has said no). Results go to
bench/results/<timestamp>-telegram.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as foundation

TARGET_P99_MS = 50.0
TOKEN = "bench-telegram-token"


async def start_simulator(port: int, log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kaskad", "simulate", "telegram", "--port", str(port),
            "--token", TOKEN, "--report-delay", "0.05", stdout=log, stderr=log)
    deadline = time.monotonic() + foundation.HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"simulator exited, see {log_path}")
        if await foundation.http_status(port, "/checkSendAbility") is not None:
            return proc
        await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("the simulator did not start")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, as bench/loadgen.py computes it."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def fallback_delays(inspector: foundation.Inspector, since_ms: int) -> list[float]:
    rows = await inspector.fetch(
        "SELECT a.started_at - v.created_at FROM verifications v JOIN attempts a "
        "ON a.request_id = v.request_id AND a.channel = 'sms' "
        f"WHERE v.created_at >= {since_ms} AND v.number LIKE '%4'")
    return [float(r[0]) for r in rows]


async def run_backend(args: argparse.Namespace, name: str, stamp: str) -> dict[str, Any]:
    backend = await foundation.BACKENDS[name](args)
    sim_port, port = foundation.free_port(), foundation.free_port()
    results = foundation.RESULTS_DIR
    sim = await start_simulator(sim_port, results / f"{stamp}-{name}-telegram-sim.log")
    server = None
    try:
        base = {"KASKAD_DATABASE_URL": backend.server_url, "KASKAD_LOG_LEVEL": "warning"}
        key = await foundation.setup_database(foundation.clean_env(base))
        env = foundation.clean_env({
            **base, "KASKAD_TELEGRAM_MODE": "gateway", "KASKAD_SMS_MODE": "inprocess",
            "KASKAD_TELEPHONY_MODE": "inprocess",
            "KASKAD_TELEGRAM_URL": f"http://127.0.0.1:{sim_port}/",
            "KASKAD_TELEGRAM_TOKEN": TOKEN, "KASKAD_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "KASKAD_SANDBOX__REPORT_DELAY_S": "0.05", "KASKAD_AUTH_CACHE_TTL_S": "5"})
        server = await foundation.start_server(
            args, env, results / f"{stamp}-{name}-telegram-server.log", None, port)
        since_ms = int(time.time() * 1000)
        load = await foundation.run_loadgen(args, "rate", port, key)
        drained = await foundation.drain(backend.inspector, args.drain_timeout)
        delays = await fallback_delays(backend.inspector, since_ms)
        return {"backend": name, "rate": args.rate, "load": load, **drained,
                "fallbacks": len(delays),
                "fallback_p50_ms": round(percentile(delays, 50), 1),
                "fallback_p99_ms": round(percentile(delays, 99), 1),
                "fallback_max_ms": round(max(delays, default=0.0), 1),
                "states": await backend.inspector.states(since_ms),
                "problems": server.problems()}
    finally:
        if server is not None:
            await server.stop()
        sim.terminate()
        await sim.wait()
        await backend.dispose(keep=False)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--rate", type=float, default=200.0, help="requests/s, every one a fallback")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    args = p.parse_args()
    # what bench/run.py's load-generator plumbing reads
    args.rate_duration, args.rate_connections, args.grace = args.duration, 64, 5.0
    args.warmup, args.fallback_share, args.max_duration = 2.0, 1.0, 0.0
    args.profile = None
    return args


def main() -> None:
    args = parse_args()
    foundation.RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [asyncio.run(run_backend(args, n, stamp)) for n in names]
    out = foundation.RESULTS_DIR / f"{stamp}-telegram.json"
    out.write_text(json.dumps(results, indent=2))
    print("| backend | rate req/s | fallbacks | API -> SMS attempt p50 / p99 / max ms "
          "| API answer p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for r in results:
        load = r["load"]
        print(f"| {r['backend']} | {r['rate']:.0f} | {r['fallbacks']} | "
              f"{r['fallback_p50_ms']} / {r['fallback_p99_ms']} / {r['fallback_max_ms']} | "
              f"{load.get('p99_ms')} | {load.get('error_count', load.get('failed'))} |")
    for r in results:
        verdict = "PASS" if r["fallback_p99_ms"] <= TARGET_P99_MS else "FAIL"
        print(f"{r['backend']}: fallback p99 {r['fallback_p99_ms']} ms "
              f"(target <= {TARGET_P99_MS:.0f} ms): {verdict}")
    print(f"details: {out.relative_to(foundation.BENCH_DIR.parent)}", file=sys.stderr)


if __name__ == "__main__":
    main()
