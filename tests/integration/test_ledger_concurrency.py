"""Money under concurrency: holds never overdraw, on both backends, from one or two nodes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from kaskad.channels.base import SendResult
from kaskad.channels.fake import FakeChannel
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.errors import NotEnoughMoney
from kaskad.services.admin import Admin
from kaskad.services.send_code import SendCodeInput
from kaskad.storage.schema import ledger, verifications


def _never_reports(sink: object) -> list[FakeChannel]:
    """Telegram takes every code and never reports, so every hold stays in place."""
    return [FakeChannel(ChannelName.TELEGRAM,
                        lambda d: SendResult(Outcome.ACCEPTED, f"ref-{d.attempt_key}"))]


async def _send_many(gw: object, key: str, n: int) -> tuple[int, int]:
    async def one(i: int) -> bool:
        try:
            await gw.send_code(SendCodeInput(api_key=key, number=f"7900{i:07d}"[:11]))  # type: ignore[attr-defined]
            return True
        except NotEnoughMoney:
            return False

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return sum(results), n - sum(results)


@pytest.mark.parametrize("pg_writers", [1, 3], ids=["one_writer", "three_writers"])
async def test_hundred_concurrent_senders_never_overdraw(make_gateway: object,
                                                        pg_writers: int) -> None:
    """Also with several concurrent group commits in one process (KASKAD_PG_WRITERS; SQLite
    always has one)."""
    gw = await make_gateway(channels=_never_reports, send_wait_s=0.01,  # type: ignore[operator]
                            pg_writers=pg_writers, write_batch=8)
    admin = Admin(gw.db, test_balance_kop=0, default_directions=["RU"])
    await admin.ensure_demo_tariffs()  # telegram 1.50
    created = await admin.create_account("tight", balance_kop=150 * 30 + 149)
    ok, refused = await _send_many(gw, created.api_key, 100)
    assert (ok, refused) == (30, 70)
    account = await admin.account("tight")
    assert account.balance == 150 * 30 + 149
    assert account.held == 150 * 30
    assert account.available == 149
    async with gw.db.read() as conn:
        holds = (await conn.execute(select(func.sum(ledger.c.amount))
                                    .where(ledger.c.kind == "hold"))).scalar_one()
        rows = (await conn.execute(select(func.count()).select_from(verifications))).scalar_one()
    assert holds == account.held
    assert rows == 30


async def test_two_nodes_share_one_balance(make_gateway: object) -> None:
    """Two gateways (as two processes would) on one database still cannot overdraw."""
    first = await make_gateway(channels=_never_reports, send_wait_s=0.01)  # type: ignore[operator]
    second = await make_gateway(channels=_never_reports, send_wait_s=0.01)  # type: ignore[operator]
    admin = Admin(first.db, test_balance_kop=0, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    created = await admin.create_account("shared", balance_kop=150 * 40)
    results = await asyncio.gather(_send_many(first, created.api_key, 50),
                                   _send_many(second, created.api_key, 50))
    assert sum(ok for ok, _ in results) == 40
    account = await admin.account("shared")
    assert account.held == account.balance == 150 * 40
