"""The callback outbox's limits: bounded tries, and refusing private addresses when asked."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from kaskad.services.admin import Admin
from kaskad.services.send_code import SendCodeInput
from kaskad.storage.schema import outbox


async def _send_with_callback(gw: object, url: str) -> str:
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])  # type: ignore[attr-defined]
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account("acme")).api_key
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
    gw.callbacks.client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    request_id = await _send_with_callback(gw, "https://customer.example/hook")
    row = await _outbox_row(gw, request_id, lambda r: r["attempts"] >= 3)
    assert row["next_attempt_at"] is None and row["delivered_at"] is None  # given up
    assert row["last_error"] == "HTTP 503"
    assert len(tries) == 3 and len(set(tries)) == 1  # one event id across the tries
    await gw.callbacks.client.aclose()


async def test_private_addresses_are_refused_when_not_allowed(make_gateway: object) -> None:
    sent: list[httpx.Request] = []
    gw = await make_gateway(callback_allow_private=False)  # type: ignore[operator]
    await gw.callbacks.stop()
    gw.callbacks.client = httpx.AsyncClient(transport=httpx.MockTransport(
        lambda r: sent.append(r) or httpx.Response(200)))
    request_id = await _send_with_callback(gw, "http://127.0.0.1:9/hook")
    row = await _outbox_row(gw, request_id, lambda r: r["attempts"] >= 1)
    assert sent == []
    assert row["next_attempt_at"] is None and str(row["last_error"]).startswith("refused:")
    await gw.callbacks.client.aclose()
