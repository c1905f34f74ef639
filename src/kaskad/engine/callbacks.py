"""Delivers the callback outbox: signed, retried with bounded exponential backoff, at least once.

Rows come two ways (storage.outbox): handed over by this node's writer the moment the
transaction that wrote them commits (`deliver_now`; they are leased to this node from the
start, so no claim statement and no poll stand between a final state and its callback), and
claimed from the table by the poll (retries, and rows whose node could not send them).

Headers on every callback:
  X-Kaskad-Event-Id   stable across retries, so receivers can de-duplicate
  X-Kaskad-Timestamp  unix seconds of this try
  X-Kaskad-Signature  hex HMAC-SHA256 over "<timestamp>\\n<body>" with the account's secret
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import structlog

from kaskad.domain.callbacks import sign
from kaskad.domain.clock import Clock, to_ms
from kaskad.engine.http_client import HttpClient, RefusedAddress
from kaskad.engine.polling import poll_forever
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.outbox import ClaimOutbox, FinishOutbox, OutboxClaim, OutboxEntry, OutboxResult

log = structlog.get_logger(__name__)

# (method, url, headers, body) -> the HTTP status; raises on network faults. The default is
# engine.http_client; tests route callbacks to an in-memory receiver through it.
Transport = Callable[[str, str, dict[str, str], bytes], Awaitable[int]]


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Delay before try number `attempt + 1`: exponential, capped, with +-20% jitter."""
    return min(cap_s, base_s * (2 ** attempt)) * rng.uniform(0.8, 1.2)


class CallbackSender:
    def __init__(self, *, batcher: WriteBatcher, claim_op: ClaimOutbox, finish_op: FinishOutbox,
                 clock: Clock, timeout_s: float, max_attempts: int, backoff_base_s: float,
                 backoff_cap_s: float, concurrency: int, allow_private: bool,
                 poll_interval_s: float, secret_of: Callable[[int], Awaitable[str]],
                 transport: Transport | None = None) -> None:
        self.batcher = batcher
        self.secret_of = secret_of
        self.claim_op = claim_op
        self.finish_op = finish_op
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.concurrency = concurrency
        self.allow_private = allow_private
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self._client = HttpClient(timeout_s=timeout_s, user_agent="kaskad-callbacks/1",
                                  max_idle_per_host=max(1, concurrency),
                                  refuse_peer=None if allow_private else private_address)
        self.transport: Transport = transport or self._client.request
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self._slots = asyncio.Semaphore(concurrency)  # requests in flight, both ways
        self._handed: set[asyncio.Task[None]] = set()
        self.pending = 0  # handed-over entries not yet finished
        # Accounts' signing secrets (set at creation, never changed), for handed-over rows.
        self._secrets: dict[int, str] = {}
        self.sent = 0
        self.failed = 0

    # How long a row is leased to the node sending it: its try must be over by then.
    @property
    def lease_s(self) -> float:
        return self.timeout_s * 2 + 5

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="callbacks")

    async def stop(self) -> None:
        """Stop sending. Handed-over rows not yet sent stay leased until their lease ends;
        then any node's poll claims them."""
        tasks = [t for t in (self._task, *self._handed) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.close()

    def wake(self) -> None:
        self._wake.set()

    def room(self) -> int:
        """How many more rows may be handed over now: while this sender runs, up to one round
        (`concurrency`) in hand, so a handed-over row waits for a request slot at most about
        two tries (with a round the poll claimed), well inside its lease. The rest (a burst,
        a slow receiver) wait in the table for the poll."""
        return max(0, self.concurrency - self.pending) if self._task is not None else 0

    def deliver_now(self, entries: Sequence[OutboxEntry]) -> None:
        """Send rows whose transaction has just committed (leased to this node for
        `lease_s` from their creation)."""
        self.pending += len(entries)
        task = asyncio.create_task(self._deliver_all(list(entries)))
        self._handed.add(task)
        task.add_done_callback(self._handed.discard)

    async def _deliver_all(self, entries: list[OutboxEntry]) -> None:
        try:
            results = await asyncio.gather(*(self._deliver(e) for e in entries))
            await self.batcher.submit_many(self.finish_op, results)
        except Exception as exc:  # not marked: the rows are claimed again after their lease
            log.warning("callbacks not finished", error=repr(exc), rows=len(entries))
        finally:
            self.pending -= len(entries)

    async def _loop(self) -> None:
        await poll_forever(self.run_once, wake=self._wake, interval_s=self.poll_interval_s,
                           full=self.concurrency, what="callback round")

    async def run_once(self) -> int:
        now = self.clock()
        lease = now + self.lease_s
        entries = await self.batcher.submit(self.claim_op, OutboxClaim(
            to_ms(now), to_ms(lease), self.concurrency))
        if not entries:
            return 0
        results = await asyncio.gather(*(self._deliver(e) for e in entries))
        await self.batcher.submit_many(self.finish_op, results)
        return len(entries)

    async def _deliver(self, entry: OutboxEntry) -> OutboxResult:
        async with self._slots:
            error = await self._post(entry)
        now = self.clock()
        if error is None:
            self.sent += 1
            return OutboxResult(entry.event_id, True, to_ms(now), None)
        self.failed += 1
        tries = entry.attempts + 1
        if tries >= self.max_attempts or error.startswith("refused:"):
            log.warning("callback given up", event_id=entry.event_id, url=entry.url, error=error)
            return OutboxResult(entry.event_id, False, to_ms(now), None, error)
        delay = backoff_s(entry.attempts, self.backoff_base_s, self.backoff_cap_s, self._rng)
        return OutboxResult(entry.event_id, False, to_ms(now), to_ms(now + delay), error)

    async def _secret(self, entry: OutboxEntry) -> str:
        if entry.secret is not None:
            self._secrets[entry.account_id] = entry.secret
            return entry.secret
        secret = self._secrets.get(entry.account_id)
        if secret is None:
            secret = await self.secret_of(entry.account_id)
            if len(self._secrets) > 100_000:
                self._secrets.clear()
            self._secrets[entry.account_id] = secret
        return secret

    async def _post(self, entry: OutboxEntry) -> str | None:
        """None on a 2xx answer, else what went wrong."""
        refusal = await self._refuse(entry.url)
        if refusal:
            return "refused: " + refusal
        body = entry.body.encode()
        try:
            secret = await self._secret(entry)
        except Exception as exc:  # the database is away: a try that failed, retried later
            return f"no signing secret: {exc!r}"
        ts = int(self.clock())
        headers = {"X-Kaskad-Event-Id": entry.event_id, "X-Kaskad-Timestamp": str(ts),
                   "X-Kaskad-Signature": sign(secret, ts, body)}
        if entry.method != "GET":
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            status = await self.transport(entry.method, entry.url, headers,
                                          body if entry.method != "GET" else b"")
        except RefusedAddress as exc:  # the name led somewhere else when connecting
            return "refused: " + str(exc)
        except (OSError, TimeoutError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"

    async def _refuse(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "not an http(s) URL"
        if self.allow_private:
            return ""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, None)
        except OSError as exc:
            return f"cannot resolve: {exc}"
        for info in infos:
            reason = private_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            if reason:
                return reason
        # Checked again on the address each connection reaches (HttpClient.refuse_peer):
        # the name is resolved anew to connect.
        return ""


def private_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why a callback may not go to `ip` (private, loopback, link-local, reserved), or ""."""
    if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved:
        return f"private address {ip}"
    return ""
