"""The callback outbox's limits: bounded tries, and refusing private addresses when asked."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
from aiohttp import web
from sqlalchemy import select

from kaskad.domain.callbacks import verify
from kaskad.services.admin import Admin
from kaskad.services.send_code import SendCodeInput
from kaskad.storage.schema import outbox
from tests.helpers import callback_transport, recording_transport, serve_aiohttp


@contextlib.asynccontextmanager
async def _hook_server(hook: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> AsyncIterator[int]:
    """The customer's endpoint: an aiohttp server (an independent HTTP implementation) on a
    free loopback port, answering /hook with `hook`; yields the port."""
    runner, port = await serve_aiohttp("/hook", hook)
    try:
        yield port
    finally:
        await runner.cleanup()


async def _send_with_callback(gw: object, url: str, account: str = "acme") -> str:
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])  # type: ignore[attr-defined]
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account(account)).api_key
    v = await gw.send_code(SendCodeInput(  # type: ignore[attr-defined]
        api_key=key, number="79001234560", callback_url=url))
    final = await gw.await_state(v.request_id, lambda v: v.final, 10)  # type: ignore[attr-defined]
    assert final is not None and final.final
    return v.request_id


async def _outbox_row(gw: object, request_id: str, done: object) -> dict[str, object]:
    """Wait until the sender has finished with the row (delivered or given up)."""
    for _ in range(400):
        await gw.callbacks.run_once()  # type: ignore[attr-defined]
        async with gw.db.read() as conn:  # type: ignore[attr-defined]
            row = (await conn.execute(select(outbox).where(
                outbox.c.request_id == request_id))).first()
        if row is not None and done(row._mapping):  # type: ignore[operator]
            return dict(row._mapping)
    raise AssertionError("the outbox row never finished")


async def test_a_failing_receiver_is_given_up_after_max_attempts(make_gateway: object) -> None:
    tries: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        tries.append(request.headers["X-Kaskad-Event-Id"])
        return httpx.Response(503)

    gw = await make_gateway(callback_max_attempts=3, callback_backoff_s=0.0,  # type: ignore[operator]
                            callback_backoff_cap_s=0.0)
    await gw.callbacks.stop()  # driven by hand below
    gw.callbacks.transport = callback_transport(receiver)
    request_id = await _send_with_callback(gw, "https://customer.example/hook")
    row = await _outbox_row(gw, request_id, lambda r: r["attempts"] >= 3)
    assert row["next_attempt_at"] is None and row["delivered_at"] is None  # given up
    assert row["last_error"] == "HTTP 503"
    assert len(tries) == 3 and len(set(tries)) == 1  # one event id across the tries


async def test_private_addresses_are_refused_when_not_allowed(make_gateway: object) -> None:
    sent: list[httpx.Request] = []
    gw = await make_gateway(callback_allow_private=False)  # type: ignore[operator]
    await gw.callbacks.stop()
    gw.callbacks.transport = recording_transport(sent)
    request_id = await _send_with_callback(gw, "http://127.0.0.1:9/hook")
    row = await _outbox_row(gw, request_id, lambda r: r["attempts"] >= 1)
    assert sent == []
    assert row["next_attempt_at"] is None and str(row["last_error"]).startswith("refused:")


async def test_callbacks_over_real_http(make_gateway: object) -> None:
    """The default transport (engine.http_client) against a real HTTP server on loopback: the
    signed POST arrives once; a refused connection is an error that is retried, not a crash."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    async with _hook_server(hook) as port:
        gw = await make_gateway()  # type: ignore[operator]
        request_id = await _send_with_callback(gw, f"http://127.0.0.1:{port}/hook")
        row = await _outbox_row(gw, request_id, lambda r: r["delivered_at"] is not None)
        assert row["attempts"] == 1 and len(seen) == 1
        method, headers, body = seen[0]
        account = await Admin(gw.db, test_balance_kop=0, default_directions=[]).account("acme")
        assert method == "POST" and orjson.loads(body)["request_id"] == request_id
        assert verify(account.callback_secret, int(headers["X-Kaskad-Timestamp"]), body,
                      headers["X-Kaskad-Signature"])
        refused = await _send_with_callback(gw, "http://127.0.0.1:9/nobody-listens", "other")
        failed = await _outbox_row(gw, refused, lambda r: r["attempts"] >= 1)
        assert failed["delivered_at"] is None and failed["last_error"]


async def _row(gw: object, request_id: str) -> dict[str, object] | None:
    async with gw.db.read() as conn:  # type: ignore[attr-defined]
        row = (await conn.execute(select(outbox).where(
            outbox.c.request_id == request_id))).first()
    return None if row is None else dict(row._mapping)


async def test_a_final_state_goes_to_the_sender_at_commit_without_a_claim(
        make_gateway: object) -> None:
    """The writer hands its new outbox rows to this node's sender when the transaction
    commits, leased to it from the start: no claim statement takes them."""
    sent: list[str] = []
    gw = await make_gateway()  # type: ignore[operator]
    gw.callbacks.transport = recording_transport(sent, lambda r: r.headers["X-Kaskad-Event-Id"])
    claimed: list[str] = []
    claim = gw.callbacks.claim_op.run

    async def counting_claim(conn: object, items: object) -> object:
        out = await claim(conn, items)
        claimed.extend(e.event_id for batch in out for e in batch)
        return out

    gw.callbacks.claim_op.run = counting_claim
    request_id = await _send_with_callback(gw, "https://customer.example/hook")
    for _ in range(200):
        row = await _row(gw, request_id)
        if row is not None and row["delivered_at"] is not None:
            break
        await asyncio.sleep(0.02)
    assert row is not None and row["delivered_at"] is not None and row["attempts"] == 1
    assert sent == [row["event_id"]] and claimed == []
    assert row["lease_until"] is None and gw.callbacks.pending == 0


async def test_a_handed_over_row_is_claimed_again_once_its_lease_ends(
        make_gateway: object) -> None:
    """A node that took a row and stopped before sending it (a crash, a restart) does not lose
    it: the row is leased, not delivered, and any sender claims it when the lease is over."""
    never = asyncio.Event()

    async def hanging(method: str, url: str, headers: dict[str, str], body: bytes) -> int:
        await never.wait()
        return 200

    gw = await make_gateway()  # type: ignore[operator]
    gw.callbacks.transport = hanging
    request_id = await _send_with_callback(gw, "https://customer.example/hook")
    for _ in range(200):
        if gw.callbacks.pending:
            break
        await asyncio.sleep(0.01)
    assert gw.callbacks.pending == 1
    await gw.callbacks.stop()  # the node goes away with the row in hand
    row = await _row(gw, request_id)
    assert row is not None and row["delivered_at"] is None and row["lease_until"] is not None
    sent: list[httpx.Request] = []
    gw.callbacks.transport = recording_transport(sent)
    assert await gw.callbacks.run_once() == 0  # still leased
    later = time.time() + gw.callbacks.lease_s + 1
    gw.callbacks.clock = lambda: later
    assert await gw.callbacks.run_once() == 1
    row = await _row(gw, request_id)
    assert row is not None and row["delivered_at"] is not None and len(sent) == 1
    assert sent[0].headers["X-Kaskad-Event-Id"] == row["event_id"]


async def test_a_name_that_rebinds_to_a_private_address_is_refused(
        make_gateway: object) -> None:
    """DNS rebinding: the name looked public when checked, and led to a loopback server when
    the sender connected. The connection's own address is checked: nothing is sent, and the
    row is given up as refused."""
    seen: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    async with _hook_server(hook) as port:
        gw = await make_gateway(callback_allow_private=False)  # type: ignore[operator]
        await gw.callbacks.stop()

        async def looks_public(url: str) -> str:
            return ""  # what the first DNS answer said

        gw.callbacks._refuse = looks_public
        request_id = await _send_with_callback(gw, f"http://localhost:{port}/hook")
        row = await _outbox_row(gw, request_id, lambda r: r["attempts"] >= 1)
        assert seen == []
        assert row["next_attempt_at"] is None and row["delivered_at"] is None
        assert str(row["last_error"]).startswith("refused: private address 127.0.0.1")
