"""A small, fast HTTP/1.1 load generator for POST /api/send/ (loopback only).

Pure asyncio over raw keep-alive sockets with pre-built request bytes: httpx spends more CPU per
request than the server does, so it cannot drive kaskad past ~1k req/s from one core.

Three APIs (--api): seed (POST /api/send/), ssms (push_msg, urlencoded) and kannel (Kannel's
GET /cgi-bin/sendsms, the reference bench/kannel.py measures).

Two modes:
  max   closed loop: N connections, each sends its next request as soon as the previous answer
        arrives; measures the throughput ceiling.
  rate  open loop: requests are scheduled on a fixed timeline (i / rate) and handed to whichever
        connection is free; latency is measured from the *scheduled* time, so a stalled server
        is charged for the requests it delayed (no coordinated omission).

Prints one JSON object (the summary) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

try:
    import orjson

    def _loads(raw: bytes) -> object:
        return orjson.loads(raw)
except ImportError:  # pragma: no cover - orjson ships with kaskad
    def _loads(raw: bytes) -> object:
        return json.loads(raw)

OK_MARK = b'"result":"ok"'
TELEGRAM_DIGITS = "012"  # sandbox: Telegram delivers
FALLBACK_DIGIT = "4"  # sandbox: no Telegram, SMS delivers
REQUEST_TIMEOUT_S = 15.0
LOOPBACK = ("127.", "localhost", "::1", "[::1]")


@dataclass
class Stats:
    """Outcomes and latencies (seconds) of the measured requests."""

    sent: int = 0
    accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)  # perf_counter() of each answer

    ok_mark: bytes = OK_MARK

    def record(self, latency: float, status: int, body: bytes) -> None:
        self.latencies.append(latency)
        self.done_at.append(time.perf_counter())
        if status == 200 and self.ok_mark in body:
            self.accepted += 1
            self.states[_field(body, b'"state":"')] += 1
            return
        code = _error_code(body)
        self.errors[code if status == 200 else f"http_{status}:{code}"] += 1

    def fail(self, latency: float | None, reason: str) -> None:
        if latency is not None:
            self.latencies.append(latency)
            self.done_at.append(time.perf_counter())
        self.errors[reason] += 1


def _field(body: bytes, prefix: bytes) -> str:
    start = body.find(prefix)
    if start < 0:
        return "?"
    start += len(prefix)
    return body[start:body.find(b'"', start)].decode(errors="replace")


def _error_code(body: bytes) -> str:
    try:
        data = _loads(body)
    except ValueError:
        return "not_json"
    if isinstance(data, dict) and isinstance(data.get("response"), dict):  # the ssms envelope
        return "err_" + str(data["response"].get("msg", {}).get("err_code"))
    if isinstance(data, dict):
        return str(data.get("error_code") or data.get("detail") or "unknown")
    return "unknown"


def build_requests(host: str, port: int, key: str, *, pool: int, fallback_share: float,
                   seed: int) -> list[bytes]:
    """Pre-encoded requests over a pool of valid Russian mobiles (7900XXXXXXD).

    D is 0/1/2 (Telegram delivers) for most and 4 (no Telegram: SMS) for `fallback_share`.
    """
    rng = random.Random(seed)
    head = (f"POST /api/send/ HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {key}\r\n"
            "Content-Type: application/json\r\n").encode()
    out = []
    for i in range(pool):
        last = FALLBACK_DIGIT if rng.random() < fallback_share else rng.choice(TELEGRAM_DIGITS)
        number = f"7900{i % 1_000_000:06d}{last}"
        body = json.dumps({"number": number, "resending": "sms"}, separators=(",", ":")).encode()
        out.append(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return out


SSMS_OK_MARK = b'"err_code":"0"'
SSMS_TEXT = "Ваш заказ 1024 собран и ждёт вас в пункте выдачи."  # one UCS-2 part


def build_ssms_requests(host: str, port: int, key: str, *, pool: int) -> list[bytes]:
    """push_msg to the ssms API at `/`, as its PHP clients post it (urlencoded form); the
    numbers end in 4 (the sandbox SMSC delivers them)."""
    head = (f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n").encode()
    out = []
    for i in range(pool):
        body = urlencode({"method": "push_msg", "format": "json", "key": key,
                          "phone": f"7900{i % 1_000_000:06d}4", "text": SSMS_TEXT}).encode()
        out.append(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return out


KANNEL_OK_STATUS = 202
KANNEL_OK_MARK = b"Accepted for delivery"  # "0: Accepted for delivery"
KANNEL_SENDER = "KASKAD"


def build_kannel_requests(host: str, port: int, key: str, *, pool: int,
                          dlr_url: str, dlr_mask: int) -> list[bytes]:
    """GET /cgi-bin/sendsms to Kannel's smsbox, `key` being `username:password`: the numbers
    and the text of the ssms API (UTF-8 in, UCS-2 on SMPP: one part), with a delivery report
    to `dlr_url` (Kannel's escapes such as %d, %p are expanded by the smsbox)."""
    username, _, password = key.partition(":")
    tail = f" HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    out = []
    for i in range(pool):
        query = urlencode({"username": username, "password": password, "from": KANNEL_SENDER,
                           "to": f"7900{i % 1_000_000:06d}4", "text": SSMS_TEXT,
                           "charset": "UTF-8", "coding": "2", "dlr-mask": str(dlr_mask),
                           "dlr-url": dlr_url})
        out.append(b"GET /cgi-bin/sendsms?" + query.encode() + tail)
    return out


class KannelStats(Stats):
    """Kannel's answers: 202 "0: Accepted for delivery" is accepted; anything else is an error
    named by its status and the start of its plain-text body."""

    def record(self, latency: float, status: int, body: bytes) -> None:
        self.latencies.append(latency)
        self.done_at.append(time.perf_counter())
        if status == KANNEL_OK_STATUS and KANNEL_OK_MARK in body:
            self.accepted += 1
            self.states["accepted"] += 1
            return
        self.errors[f"http_{status}:{body[:40].decode(errors='replace').strip()}"] += 1


class Conn:
    """One keep-alive connection; reconnects after any fault."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"connection" and value.strip().lower() == b"close":
                close = True
            elif lname == b"transfer-encoding":
                raise ValueError("chunked answers are not expected")
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body


async def _one(conn: Conn, request: bytes, stats: Stats | None, since: float) -> None:
    """Send one request; record it (latency from `since`) unless `stats` is None (warm-up)."""
    try:
        status, body = await asyncio.wait_for(conn.exchange(request), REQUEST_TIMEOUT_S)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
            TimeoutError) as exc:
        conn.close()
        if stats is not None:
            stats.fail(time.perf_counter() - since, f"conn_{type(exc).__name__}")
        return
    if stats is not None:
        stats.record(time.perf_counter() - since, status, body)


async def run_max(conns: list[Conn], requests: list[bytes], duration: float,
                  stats: Stats | None) -> float:
    """Closed loop until `duration` elapses; returns the wall time until the last answer."""
    started = time.perf_counter()
    deadline = started + duration

    async def worker(index: int, conn: Conn) -> None:
        i = index
        while time.perf_counter() < deadline:
            if stats is not None:
                stats.sent += 1
            t = time.perf_counter()
            await _one(conn, requests[i % len(requests)], stats, t)
            i += len(conns)

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    return time.perf_counter() - started


async def run_rate(conns: list[Conn], requests: list[bytes], duration: float, rate: float,
                   stats: Stats | None, grace: float) -> float:
    """Open loop on a fixed timeline; returns the wall time until the last answer.

    Requests still queued `grace` seconds after the schedule ends are not sent (counted as
    not_sent_in_time); requests in flight are never abandoned before REQUEST_TIMEOUT_S, since a
    client that hangs up mid-request is a different test.
    """
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    total = int(duration * rate)
    started = time.perf_counter()
    give_up_at = started + duration + grace

    async def schedule() -> None:
        i = 0
        while i < total:
            now = time.perf_counter()
            while i < total and started + i / rate <= now:
                queue.put_nowait((i, started + i / rate))
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        for _ in conns:
            queue.put_nowait(None)

    async def worker(conn: Conn) -> None:
        while (job := await queue.get()) is not None:
            i, scheduled = job
            if time.perf_counter() > give_up_at:
                if stats is not None:
                    stats.errors["not_sent_in_time"] += 1
                continue
            if stats is not None:
                stats.sent += 1
            await _one(conn, requests[i % len(requests)], stats, scheduled)

    workers = [asyncio.create_task(worker(c)) for c in conns]
    await schedule()
    await asyncio.gather(*workers)
    return time.perf_counter() - started


def timeline(stats: Stats, started: float, bucket_s: float = 1.0) -> list[dict[str, float]]:
    """Answers per `bucket_s` of completion time, with their p50/p99: shows stalls and drift."""
    buckets: dict[int, list[float]] = {}
    for done, latency in zip(stats.done_at, stats.latencies, strict=True):
        buckets.setdefault(int((done - started) / bucket_s), []).append(latency)
    out = []
    for index in sorted(buckets):
        lat = sorted(buckets[index])
        out.append({"t_s": round(index * bucket_s, 1), "answers": len(lat),
                    "p50_ms": round(percentile(lat, 50) * 1000, 1),
                    "p99_ms": round(percentile(lat, 99) * 1000, 1)})
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(args: argparse.Namespace, stats: Stats, elapsed: float) -> dict[str, object]:
    lat = sorted(stats.latencies)

    def ms(q: float) -> float:
        return round(percentile(lat, q) * 1000, 2)

    out: dict[str, object] = {
        "mode": args.mode, "connections": args.connections, "duration_s": args.duration,
        "elapsed_s": round(elapsed, 3), "sent": stats.sent, "accepted": stats.accepted,
        "errors": dict(stats.errors.most_common()), "error_count": sum(stats.errors.values()),
        "states": dict(stats.states.most_common()),
        "rps": round(stats.accepted / elapsed, 1) if elapsed else 0.0,
        "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0,
        "client_cpu_s": round(time.process_time(), 2),
    }
    if args.mode == "rate":
        out["target_rate"] = args.rate
    return out


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if not host.startswith(LOOPBACK):
        raise SystemExit(f"refusing a non-loopback target: {host}")
    if args.api == "ssms":
        requests = build_ssms_requests(host, port, args.key, pool=args.pool)
    elif args.api == "kannel":
        requests = build_kannel_requests(host, port, args.key, pool=args.pool,
                                         dlr_url=args.dlr_url, dlr_mask=args.dlr_mask)
    else:
        requests = build_requests(host, port, args.key, pool=args.pool,
                                  fallback_share=args.fallback_share, seed=args.seed)
    conns = [Conn(host, port) for _ in range(args.connections)]
    await asyncio.gather(*(c.open() for c in conns))
    try:
        if args.warmup > 0:
            if args.mode == "max":
                await run_max(conns, requests, args.warmup, None)
            else:
                await run_rate(conns, requests, args.warmup, args.rate, None, args.grace)
        stats = KannelStats() if args.api == "kannel" else Stats()
        if args.api == "ssms":
            stats.ok_mark = SSMS_OK_MARK
        started = time.perf_counter()
        if args.mode == "max":
            elapsed = await run_max(conns, requests, args.duration, stats)
        else:
            elapsed = await run_rate(conns, requests, args.duration, args.rate, stats, args.grace)
    finally:
        for c in conns:
            c.close()
    result = summary(args, stats, elapsed)
    if args.timeline:
        result["timeline"] = timeline(stats, started)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8765", help="loopback base URL")
    p.add_argument("--key", required=True,
                   help="API key (sent as Authorization); --api kannel: username:password")
    p.add_argument("--mode", choices=("max", "rate"), default="max")
    p.add_argument("--api", choices=("seed", "ssms", "kannel"), default="seed",
                   help="seed: POST /api/send/; ssms: push_msg to /; "
                        "kannel: GET /cgi-bin/sendsms (Kannel's smsbox)")
    p.add_argument("--dlr-url", default="",
                   help="--api kannel: the dlr-url of every message (Kannel escapes allowed)")
    p.add_argument("--dlr-mask", type=int, default=3,
                   help="--api kannel: which reports call back (1 delivered + 2 failed)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=15.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--rate", type=float, default=1000.0, help="req/s in --mode rate")
    p.add_argument("--grace", type=float, default=10.0,
                   help="rate mode: seconds after the schedule to wait for answers")
    p.add_argument("--fallback-share", type=float, default=0.1,
                   help="share of numbers without Telegram (fall back to SMS)")
    p.add_argument("--pool", type=int, default=5000, help="distinct numbers")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeline", action="store_true", help="add per-second answers, p50, p99")
    args = p.parse_args(argv)
    if not 0.0 <= args.fallback_share <= 1.0:
        p.error("--fallback-share must be within 0..1")
    if args.connections < 1 or args.duration <= 0 or args.rate <= 0:
        p.error("--connections, --duration and --rate must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args))
    else:
        result = uvloop.run(main_async(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
