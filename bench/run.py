"""Benchmark POST /api/send/ on SQLite and PostgreSQL, loopback only, bounded in time.

    python bench/run.py --backend sqlite|postgres|both

For each backend: a fresh database, `kaskad migrate`, an account with a big balance and the
tariffs via the CLI, `kaskad serve` on a free port with the sandbox channels, then the
scenarios of bench/loadgen.py in a separate process (so it gets the other core):

  max   closed loop, N keep-alive connections: accepted requests/s at full throughput
  rate  open loop at a fixed rate: p50/p99/max latency from each request's scheduled time

After each scenario it waits until every verification is final (finished_at set) and reports how
long that drain took, the final states and a ledger check. Results go to
bench/results/<timestamp>.json; a markdown table is printed for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
LOADGEN = BENCH_DIR / "loadgen.py"
PROFILER = BENCH_DIR / "profile_server.py"
INITIAL_BALANCE_RUB = 10_000_000
TARIFFS = {"telegram": "1.50", "sms": "3.50", "voice": "4.50"}
LOADGEN_EXTRA: list[str] = []  # more load-generator options (bench/ssms.py: --api ssms)
TARGETS = {"max_rps_sqlite": 3000.0, "rate_p99_ms": 30.0}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CLI_TIMEOUT_S = 60.0
HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 15.0  # the load generator's own bound on one request
PROBLEM = re.compile(r"Traceback|\bERROR\b|\berror\b|exception|Exception", re.ASCII)


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_busy() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs so far (Linux /proc/stat), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def git_commit() -> str:
    """HEAD, plus a digest of src/'s uncommitted changes (so two dirty runs can be told apart)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True,
                              text=True, timeout=10, check=False).stdout
    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "src") + git("ls-files", "--others", "--", "src")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if not diff:
        return head
    return f"{head}+dirty.{hashlib.sha256(diff.encode()).hexdigest()[:8]}"


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any KASKAD_* (so runs are reproducible), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KASKAD_")}
    env.update(extra)
    return env


async def run_cli(args: list[str], env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kaskad", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"`kaskad {' '.join(args)}` took over {CLI_TIMEOUT_S}s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"`kaskad {' '.join(args)}` failed ({proc.returncode}):\n{text}")
    return text


async def http_status(port: int, path: str) -> int | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else None
    except (OSError, TimeoutError, ValueError, IndexError):
        return None
    finally:
        writer.close()


# ----------------------------------------------------------------------------- databases


class Inspector:
    """Read-only questions to the benchmark database (for the drain and the checks)."""

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def close(self) -> None:
        pass

    async def unfinished(self) -> int:
        rows = await self.fetch("SELECT count(*) FROM verifications WHERE finished_at IS NULL")
        return int(rows[0][0])

    async def states(self, since_ms: int) -> dict[str, int]:
        """Verifications created from `since_ms` on, by state."""
        rows = await self.fetch("SELECT state, count(*) FROM verifications WHERE created_at >= "
                                f"{int(since_ms)} GROUP BY state ORDER BY state")
        return {str(state): int(n) for state, n in rows}

    async def ledger(self) -> dict[str, int]:
        rows = await self.fetch(
            "SELECT a.balance, a.held, (SELECT coalesce(sum(v.charged), 0) FROM verifications v"
            " WHERE v.account_id = a.id) FROM accounts a WHERE a.name = 'bench'")
        balance, held, charged = (int(x) for x in rows[0])
        return {"balance_kop": balance, "held_kop": held, "charged_kop": charged}


class SqliteInspector(Inspector):
    """Opens the file lazily: it exists only once `kaskad migrate` has run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        if self.conn is None:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        return self.conn.execute(sql).fetchall()  # tiny queries; blocking is fine here

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class PgInspector(Inspector):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(sql)]

    async def close(self) -> None:
        await self.conn.close()


@dataclass
class Backend:
    name: str
    server_url: str  # for KASKAD_DATABASE_URL
    inspector: Inspector
    cleanup: list[Any] = field(default_factory=list)

    async def dispose(self, keep: bool) -> None:
        await self.inspector.close()
        if not keep:
            for step in reversed(self.cleanup):
                await step()


async def make_sqlite(_: argparse.Namespace) -> Backend:
    directory = Path(tempfile.mkdtemp(prefix="kaskad-bench-"))
    path = directory / "kaskad.db"

    async def remove() -> None:
        shutil.rmtree(directory, ignore_errors=True)

    return Backend("sqlite", f"sqlite+aiosqlite:///{path}", SqliteInspector(path), [remove])


async def make_postgres(args: argparse.Namespace) -> Backend:
    import asyncpg

    admin_url = args.pg_url
    parts = urlsplit(admin_url)
    if parts.hostname not in LOOPBACK_HOSTS:
        raise SystemExit(f"--pg-url must point at loopback, not {parts.hostname}")
    name = f"kaskad_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    bench_url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    conn = await asyncpg.connect(bench_url, timeout=10)

    async def drop() -> None:
        admin = await asyncpg.connect(admin_url, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    server_url = urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", parts.query, ""))
    return Backend("postgres", server_url, PgInspector(conn), [drop])


BACKENDS = {"sqlite": make_sqlite, "postgres": make_postgres}


# ----------------------------------------------------------------------------- the server


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    port: int
    log_path: Path
    profile_out: Path | None = None

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            # cProfile needs SIGINT (uvicorn re-raises it after a graceful shutdown).
            self.proc.send_signal(signal.SIGINT if self.profile_out else signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def problems(self, limit: int = 40) -> list[str]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [ln for ln in lines if PROBLEM.search(ln)][:limit]


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:]


async def wait_healthy(port: int, limit_s: float) -> float | None:
    """Seconds until GET /health answered 200, or None if it did not within `limit_s`."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if await http_status(port, "/health") == 200:
            return round(time.monotonic() - started, 2)
        await asyncio.sleep(0.2)
    return None


async def start_server(args: argparse.Namespace, env: dict[str, str], log_path: Path,
                       profile_out: Path | None, port: int | None = None) -> Server:
    port = port or free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"]
    if profile_out:
        cmd = [sys.executable, str(PROFILER), "--out", str(profile_out), "--", *serve]
    else:
        cmd = [sys.executable, "-m", "kaskad", *serve]
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=log,
                                                    stderr=subprocess.STDOUT)
    server = Server(proc, port, log_path, profile_out)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{_tail(log_path)}")
        if await http_status(port, "/health") == 200:
            return server
        await asyncio.sleep(0.1)
    await server.stop()
    raise RuntimeError(f"server not healthy within {HEALTH_TIMEOUT_S}s:\n{_tail(log_path)}")


async def setup_database(env: dict[str, str]) -> str:
    """Schema, the bench account (returns its API key) and the tariffs, all through the CLI."""
    await run_cli(["migrate"], env)
    out = await run_cli(["accounts", "create", "bench", "--balance", str(INITIAL_BALANCE_RUB),
                         "--directions", "RU"], env)
    match = re.search(r"^API key: (\S+)$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no API key in the CLI's answer:\n{out}")
    for channel, price in TARIFFS.items():
        await run_cli(["tariffs", "set", "default", channel, "RU", price], env)
    return match.group(1)


# ----------------------------------------------------------------------------- scenarios


def loadgen_args(args: argparse.Namespace, scenario: str) -> list[str]:
    common = ["--warmup", str(args.warmup), "--fallback-share", str(args.fallback_share),
              "--timeline"]
    if scenario == "max":
        return ["--mode", "max", "--connections", str(args.max_connections),
                "--duration", str(args.max_duration), *common]
    return ["--mode", "rate", "--rate", str(args.rate), "--connections",
            str(args.rate_connections), "--duration", str(args.rate_duration),
            "--grace", str(args.grace), *common]


def scenario_budget(args: argparse.Namespace, scenario: str) -> float:
    duration = args.max_duration if scenario == "max" else args.rate_duration + args.grace
    return 2 * args.warmup + duration + 30.0


async def run_loadgen(args: argparse.Namespace, scenario: str, port: int,
                      key: str) -> dict[str, Any]:
    cmd = [sys.executable, str(LOADGEN), "--url", f"http://127.0.0.1:{port}", "--key", key,
           *loadgen_args(args, scenario), *LOADGEN_EXTRA]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    budget = scenario_budget(args, scenario) + REQUEST_TIMEOUT_S
    try:
        out, err = await asyncio.wait_for(proc.communicate(), budget)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"failed": f"load generator did not finish within {budget:.0f}s"}
    if proc.returncode != 0:
        return {"failed": f"load generator exited {proc.returncode}: {err.decode()[-2000:]}"}
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def drain(inspector: Inspector, limit_s: float) -> dict[str, Any]:
    """Wait until no verification is unfinished; how long it took and what is left."""
    started = time.perf_counter()
    left = await inspector.unfinished()
    while left and time.perf_counter() - started < limit_s:
        await asyncio.sleep(0.1)
        left = await inspector.unfinished()
    return {"drain_s": round(time.perf_counter() - started, 2), "unfinished_left": left,
            "timed_out": bool(left)}


def _py_spy_exe() -> str | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return exe if Path(exe).exists() else None


async def py_spy(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process | None:
    exe = _py_spy_exe()
    if exe is None:
        print("py-spy not found: pip install py-spy (profiling skipped)", file=sys.stderr)
        return None
    return await asyncio.create_subprocess_exec(
        # --gil: only samples where a thread holds the GIL, i.e. Python CPU, not idle waits.
        exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
        "--gil", "--format", "raw", "--output", str(out),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


ROOT_FRAMES = re.compile(r"runpy|typer/|click/|kaskad/cli\.py|kaskad/__main__|uvloop/__init__|"
                         r"asyncio/runners|threading\.py")
AREAS = (  # first match wins; by the file of the frame where a sample was taken
    ("event loop (uvloop/asyncio)", re.compile(r"asyncio/|uvloop/")),
    ("http (uvicorn/starlette/fastapi)", re.compile(r"uvicorn/|starlette/|fastapi/|httptools")),
    ("sqlalchemy", re.compile(r"sqlalchemy/")),
    ("db driver (aiosqlite thread incl. SQLite itself, asyncpg)", re.compile(r"aiosqlite/|"
                                                                            r"asyncpg/|sqlite3")),
    ("metrics (prometheus_client)", re.compile(r"prometheus_client/")),
    ("pydantic/structlog", re.compile(r"pydantic|structlog/")),
    ("kaskad", re.compile(r"kaskad/")),
)


def _area(frame: str) -> str:
    for name, pattern in AREAS:
        if pattern.search(frame):
            return name
    return "other (stdlib, ...)"


def hotspots(raw: Path, top: int = 25) -> dict[str, Any]:
    """Where the server's samples were (py-spy collapsed stacks), as shares of all samples:
    by area, by function (self), and inclusive per function (kaskad's own, and everything
    below the entry frames)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] += n
        areas[_area(frames[-1])] += n
        for frame in set(frames):
            if not ROOT_FRAMES.search(frame):
                inclusive[frame] += n

    def share(items: list[tuple[str, int]]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in items] if total else []

    kaskad = [(f, n) for f, n in inclusive.most_common() if "kaskad/" in f][:top]
    return {"samples": total, "by_area_pct": share(areas.most_common()),
            "self_pct": share(own.most_common(top)),
            "inclusive_pct": share(inclusive.most_common(top)),
            "kaskad_inclusive_pct": share(kaskad)}


async def run_scenario(args: argparse.Namespace, backend: Backend, server: Server, key: str,
                       scenario: str, stamp: str) -> dict[str, Any]:
    since_ms = int(time.time() * 1000)
    cpu0 = cpu_seconds(server.proc.pid)
    box0 = machine_busy()
    profiler = None
    raw = RESULTS_DIR / f"{stamp}-{backend.name}-{scenario}-pyspy.txt"
    if args.profile == "py-spy" and scenario == "max":
        profiler = await py_spy(server.proc.pid, args.warmup + args.max_duration, raw)
    t0 = time.perf_counter()
    load = await run_loadgen(args, scenario, server.port, key)
    wall = time.perf_counter() - t0
    cpu1 = cpu_seconds(server.proc.pid)
    box1 = machine_busy()
    result: dict[str, Any] = {"scenario": scenario, "load": load}
    result.update(await drain(backend.inspector, args.drain_timeout))
    result["states"] = await backend.inspector.states(since_ms)
    result["created"] = sum(result["states"].values())
    if cpu0 is not None and cpu1 is not None:
        result["server_cpu_pct"] = round(100 * (cpu1 - cpu0) / wall, 1)
    if box0 is not None and box1 is not None and box1[1] > box0[1]:
        # every process on the machine, 100% = all cores busy
        result["machine_cpu_pct"] = round(100 * (box1[0] - box0[0]) / (box1[1] - box0[1]), 1)
    if profiler is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(profiler.wait(), 30)
        if profiler.returncode is None:
            profiler.kill()
            await profiler.wait()
        if raw.exists():
            result["hotspots"] = hotspots(raw)
            result["profile_raw"] = str(raw.relative_to(BENCH_DIR.parent))
    return result


async def run_backend(args: argparse.Namespace, name: str, stamp: str) -> dict[str, Any]:
    print(f"[{name}] preparing a fresh database", file=sys.stderr)
    backend = await BACKENDS[name](args)
    out: dict[str, Any] = {"backend": name, "loadavg_before": os.getloadavg()}
    server: Server | None = None
    log_path = RESULTS_DIR / f"{stamp}-{name}-server.log"
    try:
        base = {"KASKAD_DATABASE_URL": backend.server_url, "KASKAD_LOG_LEVEL": "warning"}
        key = await setup_database(clean_env(base))
        env = clean_env({**base, "KASKAD_SANDBOX__REPORT_DELAY_S": "0.01",
                         # the foundation's figures: cascade and storage, channels in-process
                         # (bench/telegram.py measures the Telegram client over HTTP)
                         "KASKAD_TELEGRAM_MODE": "inprocess", "KASKAD_SMS_MODE": "inprocess",
                         "KASKAD_TELEPHONY_MODE": "inprocess",
                         "KASKAD_AUTH_CACHE_TTL_S": "5", **dict(args.server_env)})
        profile_out = (RESULTS_DIR / f"{stamp}-{name}-cprofile.txt"
                       if args.profile == "cprofile" else None)
        server = await start_server(args, env, log_path, profile_out)
        print(f"[{name}] server on 127.0.0.1:{server.port}", file=sys.stderr)
        out["scenarios"] = []
        for scenario in args.scenarios:
            if await wait_healthy(server.port, HEALTH_TIMEOUT_S) is None:
                out["aborted"] = f"server not healthy within {HEALTH_TIMEOUT_S}s before {scenario}"
                print(f"[{name}] {out['aborted']}", file=sys.stderr)
                break
            print(f"[{name}] scenario {scenario}", file=sys.stderr)
            result = await run_scenario(args, backend, server, key, scenario, stamp)
            brief = {k: v for k, v in result["load"].items() if k != "timeline"}
            print(f"[{name}] {scenario}: {json.dumps(brief)} drain {result['drain_s']}s",
                  file=sys.stderr)
            out["scenarios"].append(result)
        out["ledger"] = await backend.inspector.ledger()
        out["ledger"]["ok"] = (out["ledger"]["held_kop"] == 0 and out["ledger"]["balance_kop"]
                               + out["ledger"]["charged_kop"] == INITIAL_BALANCE_RUB * 100)
    finally:
        if server is not None:
            out["server_exit"] = await server.stop()
            out["server_log_problems"] = server.problems()
            out["server_log"] = str(log_path.relative_to(BENCH_DIR.parent))
            if server.profile_out is not None:
                out["cprofile"] = str(server.profile_out.relative_to(BENCH_DIR.parent))
        await backend.dispose(args.keep)
    return out


# ----------------------------------------------------------------------------- report


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| backend | scenario | accepted req/s | p50 ms | p99 ms | max ms | errors "
            "| drain s | CPU server/machine | states after drain |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for backend in results:
        for sc in backend.get("scenarios", []):
            load = sc["load"]
            if "failed" in load:
                rows.append(f"| {backend['backend']} | {sc['scenario']} | failed: "
                            f"{load['failed'][:60]} | | | | | {sc['drain_s']} | | |")
                continue
            label = (f"max, {load['connections']} conns" if load["mode"] == "max" else
                     f"{load['target_rate']:.0f} req/s, {load['connections']} conns")
            drain = f"{sc['drain_s']}" + (f" (TIMEOUT, {sc['unfinished_left']} left)"
                                          if sc["timed_out"] else "")
            states = ", ".join(f"{s} {n}" for s, n in sc["states"].items())
            cpu = "/".join(f"{sc[k]:.0f}%" if k in sc else "?"
                           for k in ("server_cpu_pct", "machine_cpu_pct"))
            rows.append(f"| {backend['backend']} | {label} | {load['rps']:.0f} | "
                        f"{load['p50_ms']:.1f} | {load['p99_ms']:.1f} | {load['max_ms']:.1f} | "
                        f"{load['error_count']} | {drain} | {cpu} | {states} |")
    return "\n".join(rows)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for backend in results:
        for sc in backend.get("scenarios", []):
            load = sc["load"]
            if "failed" in load:
                continue
            if load["mode"] == "max" and backend["backend"] == "sqlite":
                ok = load["rps"] >= TARGETS["max_rps_sqlite"]
                lines.append(f"{'PASS' if ok else 'FAIL'} sqlite max: {load['rps']:.0f} req/s "
                             f"(target >= {TARGETS['max_rps_sqlite']:.0f})")
            if load["mode"] == "rate":
                ok = load["p99_ms"] <= TARGETS["rate_p99_ms"] and not load["error_count"]
                lines.append(f"{'PASS' if ok else 'FAIL'} {backend['backend']} "
                             f"{load['target_rate']:.0f} req/s: p99 {load['p99_ms']:.1f} ms, "
                             f"{load['error_count']} errors (target p99 <= "
                             f"{TARGETS['rate_p99_ms']:.0f} ms)")
        if backend.get("aborted"):
            lines.append(f"FAIL {backend['backend']}: {backend['aborted']}")
        ledger = backend.get("ledger")
        if ledger and not ledger["ok"]:
            lines.append(f"FAIL {backend['backend']} ledger: {ledger}")
        if backend.get("server_log_problems"):
            lines.append(f"WARN {backend['backend']} server log has "
                         f"{len(backend['server_log_problems'])} problem lines: "
                         f"{backend['server_log']}")
    return lines


# ----------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test",
                   help="a loopback PostgreSQL where CREATE DATABASE is allowed")
    p.add_argument("--scenarios", default="max,rate", help="comma-separated: max, rate")
    p.add_argument("--max-connections", type=int, default=64)
    p.add_argument("--max-duration", type=float, default=15.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--rate-connections", type=int, default=200)
    p.add_argument("--rate-duration", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per scenario")
    p.add_argument("--grace", type=float, default=10.0,
                   help="rate: seconds past the schedule to wait for answers")
    p.add_argument("--fallback-share", type=float, default=0.1,
                   help="share of numbers without Telegram (SMS fallback)")
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument("--profile", choices=("none", "py-spy", "cprofile"), default="none",
                   help="py-spy: sample the server during the max scenario; cprofile: run it "
                        "under bench/profile_server.py (slower)")
    p.add_argument("--server-env", action="append", default=[], metavar="KASKAD_X=VALUE",
                   type=lambda s: tuple(s.split("=", 1)), help="extra server settings")
    p.add_argument("--keep", action="store_true", help="keep the databases (for inspection)")
    args = p.parse_args()
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not set(args.scenarios) <= {"max", "rate"} or not args.scenarios:
        p.error("--scenarios takes max and/or rate")
    if any(len(kv) != 2 or not kv[0].startswith("KASKAD_") for kv in args.server_env):
        p.error("--server-env takes KASKAD_NAME=VALUE")
    return args


async def main_async(args: argparse.Namespace, stamp: str) -> list[dict[str, Any]]:
    names = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for name in names:
        try:
            results.append(await run_backend(args, name, stamp))
        except Exception as exc:  # one backend failing must not lose the other's figures
            print(f"[{name}] FAILED: {exc}", file=sys.stderr)
            results.append({"backend": name, "failed": str(exc)})
    return results


def main() -> None:
    args = parse_args()
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    results = asyncio.run(main_async(args, stamp))
    report = {
        "timestamp": stamp, "commit": git_commit(), "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "settings": {k: v for k, v in vars(args).items() if k != "pg_url"},
        "total_s": round(time.perf_counter() - started, 1), "results": results,
    }
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(table(results))
    print()
    for line in verdicts(results):
        print(line)
    for backend in results:
        if "failed" in backend:
            print(f"FAIL {backend['backend']}: {backend['failed'][:500]}")
    print(f"\nfull results: {path.relative_to(BENCH_DIR.parent)} "
          f"({report['total_s']} s in all)")


if __name__ == "__main__":
    main()
