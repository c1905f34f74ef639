"""Kill a worker in the middle of a cascade step: the work resumes after the lease, nothing is
lost and nothing is charged twice. Runs a real `kaskad worker` process on both backends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from sqlalchemy import select

from kaskad.domain.cascade import Resending, State
from kaskad.domain.channels import ChannelName
from kaskad.domain.clock import to_ms
from kaskad.services.admin import Admin
from kaskad.services.send_code import new_request_id
from kaskad.storage.schema import attempts, ledger, verifications
from kaskad.storage.verifications import CreateVerifications, NewVerification, get_verification


async def _wait_for(predicate: object, limit_s: float) -> None:
    """Another process changes the row, so there is nothing to await but the database."""

    async def loop() -> None:
        while not await predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), limit_s)


async def test_killed_worker_work_resumes_and_is_charged_once(make_gateway: object,
                                                              db_url: str) -> None:
    survivor = await make_gateway(  # type: ignore[operator]
        start=False, lease_s=3.0, sandbox={"report_delay_s": 0.02, "slow_delay_s": 0.05})
    admin = Admin(survivor.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    account = (await admin.create_account("acme")).account
    now = to_ms(survivor.clock())
    request_id = new_request_id()
    # Number ending 9: no Telegram, and the voice call is slow, so the worker is mid-call.
    await survivor.batcher.submit(CreateVerifications(survivor.db), NewVerification(
        request_id=request_id, account_id=account.id, number="79001234569", direction="RU",
        code="4321", resending=Resending.VOICE,
        channels=(ChannelName.TELEGRAM, ChannelName.VOICE), callback_url=None,
        now_ms=now, lease_owner="nobody", lease_until_ms=now))

    env = dict(os.environ, KASKAD_DATABASE_URL=db_url, KASKAD_NODE_ID="doomed",
               KASKAD_LEASE_S="3", KASKAD_POLL_INTERVAL_S="0.05", KASKAD_LOG_LEVEL="warning",
               KASKAD_SANDBOX__SLOW_DELAY_S="120", KASKAD_TELEGRAM_MODE="inprocess",
               KASKAD_SMS_MODE="inprocess")
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kaskad", "worker", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async def in_voice_call() -> bool:
            async with survivor.db.read() as conn:
                row = (await conn.execute(select(verifications.c.step_index,
                                                 verifications.c.lease_owner)
                                          .where(verifications.c.request_id == request_id)
                                          )).first()
            return row is not None and tuple(row) == (1, "doomed")

        await _wait_for(in_voice_call, 30)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    await survivor.start()

    async def finished() -> bool:
        async with survivor.db.read() as conn:
            v = await get_verification(conn, request_id)
        return v is not None and v.final

    await _wait_for(finished, 30)
    async with survivor.db.read() as conn:
        v = await get_verification(conn, request_id)
        entries = [(r[0], r[1]) for r in await conn.execute(
            select(ledger.c.kind, ledger.c.amount).where(ledger.c.request_id == request_id)
            .order_by(ledger.c.id))]
        tries = [(r[0], r[1]) for r in await conn.execute(
            select(attempts.c.channel, attempts.c.outcome)
            .where(attempts.c.request_id == request_id).order_by(attempts.c.id))]
    assert v is not None and v.state is State.VOICE and v.charged == 450
    assert entries == [("hold", 450), ("capture", 450)]
    # The killed worker recorded Telegram's refusal; its voice call died with it; the
    # survivor made the call again once the lease ran out.
    assert tries == [("telegram", "rejected_permanent"), ("voice", "delivered")]
    after = await admin.account("acme")
    assert (after.balance, after.held) == (5000 - 450, 0)
