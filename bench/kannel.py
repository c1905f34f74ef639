"""The reference: real Kannel 1.4.5 (Debian's `kannel` package) through the same pipeline shape
as bench/ssms.py, so both can be measured in the same half hour on this machine.

    python bench/kannel.py [--binds 1,4] [--duration 15] [--connections 64]

HTTP GET /cgi-bin/sendsms (bench/loadgen.py --api kannel: closed loop, keep-alive) -> Kannel's
smsbox -> bearerbox (messages in its store until the SMSC acknowledged them) -> SMPP submit_sm to
`kaskad simulate smsc` (started as bench/ssms.py starts it, receipts after 10 ms) -> receipt
(deliver_sm) -> Kannel's DLR -> the smsbox GETs the message's dlr-url on this process's
callback endpoint (bench/ssms.py's). dlr-mask 3: only final reports (1 delivered, 2 failed)
call back, so a message counts when its final report has arrived.

The Kannel configuration is generated into a temporary directory (ports: free loopback ones);
bearerbox and smsbox are stopped at the end, also on errors and Ctrl-C. Results go to
bench/results/<timestamp>-kannel.json; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as foundation
from ssms import CallbackEndpoint, http_get, start_smsc

_SEARCH = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"))
BEARERBOX = shutil.which("bearerbox", path=_SEARCH) or "/usr/sbin/bearerbox"  # Debian: /usr/sbin
SMSBOX = shutil.which("smsbox", path=_SEARCH) or "/usr/sbin/smsbox"
WINDOW = 10  # max-pending-submits of every bind
LOG_LEVEL = 2  # Kannel's levels: 0 debug, 1 info, 2 warning, 3 error, 4 panic
# spool: one file per message in a directory, written when bearerbox takes the message and
# removed once the SMSC has acknowledged it; file: every message appended to one file, which is
# rewritten from memory every store-dump-freq (10 s). Kannel never fsyncs either of them.
STORE_TYPES = ("spool", "file")
STORE_TYPE = "file"  # the faster of the two here (see bench/README.md)
ADMIN_PASSWORD = "bench"
SENDSMS_USER = ("bench", "bench")
SMSC_ID = "sim"
DLR_MASK = 3  # 1 delivered + 2 failed: final states only
FINAL_TYPES = {"1": "delivered", "2": "failed"}
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
BEARERBOX_STOP_S = 5.0  # see Kannel.stop
DRAIN_STALL_S = 10.0  # see _drain

CONFIG = """\
group = core
admin-port = {admin_port}
admin-interface = "127.0.0.1"
admin-password = {admin_password}
admin-deny-ip = "*.*.*.*"
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox_port}
smsbox-interface = "127.0.0.1"
box-deny-ip = "*.*.*.*"
box-allow-ip = "127.0.0.1"
log-file = "{dir}/bearerbox.log"
log-level = {log_level}
store-type = {store_type}
store-location = "{store_location}"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = {smsc_id}
instances = {binds}
host = 127.0.0.1
port = {smsc_port}
transceiver-mode = true
smsc-username = kaskad
smsc-password = secret
system-type = ""
max-pending-submits = {window}

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = "127.0.0.1"
log-file = "{dir}/smsbox.log"
log-level = {log_level}

group = sendsms-user
username = {username}
password = {password}
"""


@dataclass
class Kannel:
    """bearerbox and smsbox on one generated configuration in `directory`."""

    directory: Path
    binds: int
    smsc_port: int
    store: str = STORE_TYPE
    admin_port: int = field(default_factory=foundation.free_port)
    smsbox_port: int = field(default_factory=foundation.free_port)
    sendsms_port: int = field(default_factory=foundation.free_port)
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    @property
    def store_location(self) -> Path:
        """A directory for the spool store, a file (plus its .bak/.new) for the file store."""
        return self.directory / ("spool" if self.store == "spool" else "store.file")

    def write_config(self) -> Path:
        if self.store == "spool":
            self.store_location.mkdir(exist_ok=True)
        else:  # an empty store to load (a missing one is logged as errors)
            self.store_location.touch()
        path = self.directory / "kannel.conf"
        path.write_text(CONFIG.format(
            admin_port=self.admin_port, admin_password=ADMIN_PASSWORD,
            smsbox_port=self.smsbox_port, sendsms_port=self.sendsms_port,
            smsc_port=self.smsc_port, dir=self.directory, log_level=LOG_LEVEL,
            store_type=self.store, store_location=self.store_location, smsc_id=SMSC_ID,
            binds=self.binds, window=WINDOW, username=SENDSMS_USER[0],
            password=SENDSMS_USER[1]))
        return path

    async def start(self) -> None:
        """bearerbox, then smsbox once the admin port answers; until every bind is online,
        the smsbox is connected and its sendsms port answers."""
        config = self.write_config()
        deadline = time.monotonic() + START_TIMEOUT_S
        await self._spawn("bearerbox", BEARERBOX, config)
        while await foundation.http_status(self.admin_port, self._admin("status.xml")) != 200:
            self._check_alive(deadline)
            await asyncio.sleep(0.1)
        await self._spawn("smsbox", SMSBOX, config)
        while True:
            self._check_alive(deadline)
            status = await self.status()
            online = [s for s in status.iter("smsc")
                      if (s.findtext("status") or "").startswith("online")]
            if (len(online) == self.binds and any(status.iter("box"))
                    and await foundation.http_status(self.sendsms_port, "/") is not None):
                return
            await asyncio.sleep(0.2)

    async def _spawn(self, name: str, exe: str, config: Path) -> None:
        with (self.directory / f"{name}.stderr").open("wb") as log:
            # -v: the level of what goes to stderr (its default is debug).
            # A session of its own: a Ctrl-C reaches this process only, which stops them.
            self.procs[name] = await asyncio.create_subprocess_exec(
                exe, "-v", str(LOG_LEVEL), str(config), stdout=log, stderr=log,
                start_new_session=True)

    def _check_alive(self, deadline: float) -> None:
        for name, proc in self.procs.items():
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{self.stderr(name)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kannel not ready within {START_TIMEOUT_S:.0f}s:\n"
                               + "\n".join(self.stderr(n) for n in self.procs))

    def stderr(self, name: str, chars: int = 3000) -> str:
        """The end of what a process wrote to stderr (level 2 and up, as in its log file)."""
        path = self.directory / f"{name}.stderr"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def problems(self, limit: int = 40) -> list[str]:
        return [f"{name}: {line}" for name in self.procs
                for line in self.stderr(name, 100_000).splitlines()
                if "ERROR:" in line or "PANIC:" in line][:limit]

    def _admin(self, command: str) -> str:
        return f"/{command}?password={ADMIN_PASSWORD}"

    async def status(self) -> ET.Element:
        return ET.fromstring(await http_get(self.admin_port, self._admin("status.xml")))

    def cpu(self) -> float:
        """bearerbox + smsbox CPU seconds (all their threads)."""
        return sum(foundation.cpu_seconds(p.pid) or 0.0 for p in self.procs.values())

    def spool_files(self) -> int | None:
        if self.store != "spool":
            return None
        return sum(1 for p in self.store_location.rglob("*") if p.is_file())

    async def stop(self, smsc: asyncio.subprocess.Process | None) -> dict[str, str]:
        """smsbox, then bearerbox: SIGTERM (Kannel's graceful shutdown), SIGKILL after a bound.

        bearerbox unbinds on its way out and then waits up to 30 s (its compiled-in SMPP
        shutdown timeout) for an unbind_resp that the simulator does not send, so the
        simulator is stopped right after bearerbox has been told to, and bearerbox gets
        BEARERBOX_STOP_S at most: after a completed drain its queues and store are empty, so
        nothing is lost; the outcome is reported."""
        outcome: dict[str, str] = {}
        for name in ("smsbox", "bearerbox"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                limit = STOP_TIMEOUT_S
                if name == "bearerbox":
                    limit = BEARERBOX_STOP_S
                    if smsc is not None:
                        await asyncio.sleep(0.5)  # for the unbind to go out first
                        await _terminate(smsc)
                try:
                    await asyncio.wait_for(proc.wait(), limit)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
                    outcome[name] = f"killed after {limit:.0f} s"
                    continue
            outcome[name] = f"exited {proc.returncode}"
        return outcome


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _counter(status: ET.Element, path: str) -> int:
    try:
        return int(status.findtext(path) or 0)
    except ValueError:
        return 0


class Reports:
    """The callbacks the endpoint received, read by report type (`type=%d` in the dlr-url),
    incrementally: the drain polls it ten times a second."""

    def __init__(self, endpoint: CallbackEndpoint) -> None:
        self.endpoint = endpoint
        self.seen = 0
        self.final_times: list[float] = []  # arrival of each final report, in order
        self.by_type: dict[str, int] = {}

    def update(self) -> int:
        """The number of final reports so far."""
        times, targets = self.endpoint.times, self.endpoint.targets
        # a GET has no body: each request's target and time are appended together
        for when, target in zip(times[self.seen:], targets[self.seen:], strict=False):
            kind = parse_qs(urlsplit(target).query).get("type", ["?"])[0]
            self.by_type[kind] = self.by_type.get(kind, 0) + 1
            if kind in FINAL_TYPES:
                self.final_times.append(when)
            self.seen += 1
        return len(self.final_times)

    def between(self, start: float, end: float) -> int:
        return (bisect.bisect_right(self.final_times, end)
                - bisect.bisect_left(self.final_times, start))


async def run_case(args: argparse.Namespace, binds: int, stamp: str) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="kaskad-bench-kannel-"))
    tag = f"{stamp}-kannel-{binds}b"
    smsc_port = foundation.free_port()
    endpoint = CallbackEndpoint()
    reports = Reports(endpoint)
    kannel = Kannel(directory, binds, smsc_port, args.store)
    smsc: asyncio.subprocess.Process | None = None
    stopped: dict[str, str] = {}
    load_before = os.getloadavg()
    try:
        smsc = await start_smsc(smsc_port, foundation.RESULTS_DIR / f"{tag}-smsc.log")
        await endpoint.start()
        await kannel.start()
        dlr_url = f"http://127.0.0.1:{endpoint.port}/dlr?to=%p&type=%d"
        foundation.LOADGEN_EXTRA = ["--api", "kannel", "--dlr-url", dlr_url,
                                    "--dlr-mask", str(DLR_MASK)]
        cpu_start = (kannel.cpu(), foundation.cpu_seconds(smsc.pid) or 0.0)
        busy_start = foundation.machine_busy()
        load = await foundation.run_loadgen(args, "max", kannel.sendsms_port,
                                            ":".join(SENDSMS_USER))
        window_end = time.perf_counter()
        busy_end = foundation.machine_busy()
        window_start = window_end - float(load.get("elapsed_s", args.duration))
        drained = await _drain(kannel, reports, args.drain_timeout)
        cpu_end = (kannel.cpu(), foundation.cpu_seconds(smsc.pid) or 0.0)
        status = await kannel.status()
        reports.update()
        final = reports.final_times
        messages = _counter(status, "sms/sent/total")  # MT handed to the SMSC, warm-up included
        span = window_end - window_start
        first = window_start - args.warmup
        result = {
            "gateway": "kannel", "version": _version(), "binds": binds, "window": WINDOW,
            "store": args.store, "log_level": LOG_LEVEL, "load": load, **drained,
            "messages": messages, "delivered": reports.by_type.get("1", 0),
            "callbacks": len(endpoint.times), "final_callbacks": len(final),
            "callbacks_by_type": reports.by_type,
            "e2e_per_s": round(reports.between(window_start, window_end) / span) if span else 0,
            # everything accepted (warm-up included), from the first request to the last
            # final report: the rate Kannel completes messages at when it is never idle
            "completed_per_s": round(len(final) / (final[-1] - first)) if final else 0,
            "http_per_s": load.get("rps"), "http_p99_ms": load.get("p99_ms"),
            # CPU per message, from just before the load until the last report arrived
            "kannel_cpu_us_per_msg": round((cpu_end[0] - cpu_start[0]) / messages * 1e6)
            if messages else None,
            "smsc_cpu_us_per_msg": round((cpu_end[1] - cpu_start[1]) / messages * 1e6)
            if messages else None,
            # both cores' busy share during the load (100% = the machine is saturated)
            "machine_busy_pct": round(100 * (busy_end[0] - busy_start[0])
                                      / max(1, busy_end[1] - busy_start[1]))
            if busy_start and busy_end else None,
            "loadavg_before": load_before,
            "kannel_status": {"sms_sent": messages,
                              "sms_received": _counter(status, "sms/received/total"),
                              "dlr_received": _counter(status, "dlr/received/total"),
                              "store_size": _counter(status, "sms/storesize")},
            "spool_files_left": kannel.spool_files(),
            "problems": kannel.problems()}
    finally:
        stopped = await kannel.stop(smsc)
        if smsc is not None:
            await _terminate(smsc)
        await endpoint.stop()
        for name in ("bearerbox.log", "smsbox.log", "kannel.conf"):
            if (directory / name).exists():
                shutil.copy(directory / name, foundation.RESULTS_DIR / f"{tag}-{name}")
        shutil.rmtree(directory, ignore_errors=True)
    result["stopped"] = stopped
    return result


async def _drain(kannel: Kannel, reports: Reports, limit_s: float) -> dict[str, Any]:
    """Until every message handed to the SMSC has had its final report called back and
    nothing is left in Kannel's queues, store and DLR table; or, once its queues and store are
    empty, until nothing has moved for DRAIN_STALL_S (a receipt Kannel could not match to its
    message never calls back: that message stays unfinished and the bearerbox log says why)."""
    started = last_move = time.perf_counter()
    seen: tuple[int, ...] = ()
    while True:
        status = await kannel.status()
        submitted = _counter(status, "sms/sent/total")
        queued = _counter(status, "sms/sent/queued") + _counter(status, "sms/storesize")
        dlr_table = _counter(status, "dlr/queued")
        done = reports.update()
        now = time.perf_counter()
        if (submitted, queued, dlr_table, done) != seen:
            seen, last_move = (submitted, queued, dlr_table, done), now
        unfinished = max(0, submitted - done) + queued
        stalled = not queued and now - last_move > DRAIN_STALL_S
        if (not unfinished and not dlr_table) or stalled or now - started > limit_s:
            return {"drain_s": round(now - started, 2), "unfinished_left": unfinished,
                    "dlr_table_left": dlr_table, "stalled": stalled and bool(unfinished),
                    "timed_out": not stalled and bool(unfinished or dlr_table)}
        await asyncio.sleep(0.1)


def _version() -> str:
    import subprocess

    out = subprocess.run([BEARERBOX, "--version"], capture_output=True, text=True, timeout=10,
                         check=False)
    return (out.stdout + out.stderr).split("\n", 1)[0].strip()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binds", default="1,4", help="comma-separated cases (instances = N)")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--store", choices=STORE_TYPES, default=STORE_TYPE,
                   help="bearerbox's store-type")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    args = p.parse_args()
    # what bench/run.py's load-generator plumbing reads (as bench/ssms.py sets it)
    args.max_duration, args.max_connections = args.duration, args.connections
    args.warmup, args.fallback_share, args.grace = 2.0, 0.0, 5.0
    return args


def main() -> None:
    args = parse_args()
    if not (Path(BEARERBOX).exists() and Path(SMSBOX).exists()):
        raise SystemExit(f"Kannel is not installed ({BEARERBOX} and {SMSBOX} are needed): "
                         "sudo apt-get install kannel")
    foundation.RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = [asyncio.run(run_case(args, int(b), stamp)) for b in args.binds.split(",")]
    out = foundation.RESULTS_DIR / f"{stamp}-kannel.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"{results[0]['version']} store-type = {args.store}, log-level = {LOG_LEVEL} "
          f"(warning), dlr-mask = {DLR_MASK}, max-pending-submits = {WINDOW} per bind")
    print("| gateway | binds x window | sendsms accepted/s (HTTP p99 ms) | called back/s "
          "during the load | completed/s overall | messages | delivered | callbacks "
          "| unfinished | Kannel / SMSC CPU per message | machine busy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| Kannel 1.4.5 ({r['store']}) | {r['binds']} x {r['window']} "
              f"| {r['http_per_s']} ({r['http_p99_ms']}) | {r['e2e_per_s']} "
              f"| {r['completed_per_s']} | {r['messages']} | {r['delivered']} "
              f"| {r['callbacks']} | {r['unfinished_left']} "
              f"| {r['kannel_cpu_us_per_msg']} / {r['smsc_cpu_us_per_msg']} µs "
              f"| {r['machine_busy_pct']} % |")
        errors = r["load"].get("errors") or r["load"].get("failed")
        if errors or r["problems"]:
            print(f"  {r['binds']} bind(s): HTTP errors {errors}; log: {r['problems'][:5]}",
                  file=sys.stderr)
    print(f"details: {out.relative_to(foundation.BENCH_DIR.parent)}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the case's cleanup has run: Kannel and the simulator are gone
        print("interrupted; Kannel and the SMSC simulator were stopped", file=sys.stderr)
        sys.exit(130)
