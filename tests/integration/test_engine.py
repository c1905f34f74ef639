"""The cascade engine on real storage: claims, leases, fencing, report races, timers."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from kaskad.channels.base import Delivery, SendResult
from kaskad.channels.fake import FakeChannel
from kaskad.domain.cascade import Resending, State
from kaskad.domain.channels import ChannelName, Outcome
from kaskad.domain.clock import to_ms
from kaskad.services.admin import Admin
from kaskad.services.send_code import SendCodeInput, new_request_id
from kaskad.storage.batch import WriteBatcher
from kaskad.storage.db import Database
from kaskad.storage.schema import attempts, ledger, reports
from kaskad.storage.verifications import (
    Claim,
    ClaimDue,
    CreateVerifications,
    NewVerification,
    StepOutcome,
    Verification,
    get_verification,
)


async def _account(gw: object, balance: int = 5000) -> tuple[Admin, str]:
    admin = Admin(gw.db, test_balance_kop=balance, default_directions=["RU"])  # type: ignore[attr-defined]
    await admin.ensure_demo_tariffs()
    return admin, (await admin.create_account("acme")).api_key


async def _final(gw: object, request_id: str) -> Verification:
    v = await gw.await_state(request_id, lambda v: v.final, 10.0)  # type: ignore[attr-defined]
    assert v is not None and v.final, v
    return v


async def _ledger(gw: object, request_id: str) -> list[tuple[str, int]]:
    async with gw.db.read() as conn:  # type: ignore[attr-defined]
        rows = await conn.execute(select(ledger.c.kind, ledger.c.amount)
                                  .where(ledger.c.request_id == request_id)
                                  .order_by(ledger.c.id))
        return [(r[0], r[1]) for r in rows]


async def test_report_before_attempt_is_stored_still_applies(make_gateway: object) -> None:
    """Fast providers report before we store their reference; the report must not be lost."""
    holder: dict[str, FakeChannel] = {}

    async def report_first(d: Delivery) -> SendResult:
        ref = "early-" + d.attempt_key
        await holder["tg"].report(ref, Outcome.DELIVERED, "delivered")
        return SendResult(Outcome.ACCEPTED, ref)

    def channels(sink: object) -> list[FakeChannel]:
        holder["tg"] = FakeChannel(ChannelName.TELEGRAM, report_first, sink)  # type: ignore[arg-type]
        return [holder["tg"]]

    gw = await make_gateway(channels=channels)  # type: ignore[operator]
    _, key = await _account(gw)
    v = await gw.send_code(SendCodeInput(api_key=key, number="79001234560"))
    final = await _final(gw, v.request_id)
    assert final.state is State.DELIVERED
    assert await _ledger(gw, v.request_id) == [("hold", 150), ("capture", 150)]


async def test_duplicate_and_late_reports_are_recorded_not_reapplied(make_gateway: object) -> None:
    holder: dict[str, FakeChannel] = {}

    def channels(sink: object) -> list[FakeChannel]:
        holder["tg"] = FakeChannel(ChannelName.TELEGRAM,
                                   lambda d: SendResult(Outcome.ACCEPTED, "r-" + d.request_id),
                                   sink)  # type: ignore[arg-type]
        return [holder["tg"]]

    gw = await make_gateway(channels=channels)  # type: ignore[operator]
    _, key = await _account(gw)
    v = await gw.send_code(SendCodeInput(api_key=key, number="79001234560"))
    assert v.state is State.SENT
    for outcome in (Outcome.DELIVERED, Outcome.DELIVERED, Outcome.NOT_DELIVERED):
        await holder["tg"].report("r-" + v.request_id, outcome)
    final = await _final(gw, v.request_id)
    assert final.state is State.DELIVERED and final.charged == 150
    assert await _ledger(gw, v.request_id) == [("hold", 150), ("capture", 150)]
    async with gw.db.read() as conn:
        dispositions = [r[0] for r in await conn.execute(
            select(reports.c.disposition).order_by(reports.c.id))]
    assert dispositions == ["applied", "late", "late"]


async def test_no_telegram_falls_back_at_once_and_temporary_errors_retry(
        make_gateway: object) -> None:
    calls: list[str] = []

    def telegram(d: Delivery) -> SendResult:
        calls.append("tg")
        if d.number.endswith("7"):
            return SendResult(Outcome.REJECTED_TEMPORARY, None, "FLOOD_WAIT_1")
        return SendResult(Outcome.REJECTED_PERMANENT, None, "PHONE_NUMBER_NOT_FOUND")

    def sms(d: Delivery) -> SendResult:
        calls.append("sms")
        return SendResult(Outcome.DELIVERED, "sms-" + d.attempt_key)

    gw = await make_gateway(channels=lambda sink: [  # type: ignore[operator]
        FakeChannel(ChannelName.TELEGRAM, telegram, sink),
        FakeChannel(ChannelName.SMS, sms, sink)])
    _, key = await _account(gw)
    v = await gw.send_code(SendCodeInput(api_key=key, number="79001234564", resending="sms"))
    assert (v.state, v.resend) == (State.SEND_SMS, "sms")  # the answer tells the fallback
    assert (await _final(gw, v.request_id)).state is State.SMS
    assert calls == ["tg", "sms"]
    calls.clear()
    v = await gw.send_code(SendCodeInput(api_key=key, number="79001234567", resending="sms"))
    final = await _final(gw, v.request_id)
    assert final.state is State.SMS
    assert calls == ["tg", "tg", "tg", "sms"]  # two retries with backoff, then the fallback
    async with gw.db.read() as conn:
        outcomes = [r[0] for r in await conn.execute(
            select(attempts.c.outcome).where(attempts.c.request_id == v.request_id)
            .order_by(attempts.c.id))]
    assert outcomes == ["rejected_temporary"] * 3 + ["delivered"]


async def test_silent_telegram_times_out_into_the_fallback(make_gateway: object) -> None:
    gw = await make_gateway(telegram_timeout_s=0.2)  # type: ignore[operator]
    _, key = await _account(gw)
    v = await gw.send_code(SendCodeInput(api_key=key, number="79001234563", resending="voice"))
    assert v.state is State.SENT
    final = await _final(gw, v.request_id)
    assert (final.state, final.state_reason, final.resend) == (
        State.VOICE, "telegram_timeout", "voice")
    assert await _ledger(gw, v.request_id) == [("hold", 450), ("capture", 450)]


async def test_stale_outcome_from_an_expired_lease_is_not_applied(make_gateway: object) -> None:
    gw = await make_gateway(channels=lambda sink: [  # type: ignore[operator]
        FakeChannel(ChannelName.TELEGRAM, lambda d: SendResult(Outcome.ACCEPTED, "x"), sink)])
    _, key = await _account(gw)
    v = await gw.send_code(SendCodeInput(api_key=key, number="79001234560"))
    stale = StepOutcome(request_id=v.request_id, version=v.version - 1, step_index=0,
                        retries=0, outcome=Outcome.DELIVERED, now_ms=to_ms(gw.clock()),
                        started_ms=to_ms(gw.clock()))
    applied = await gw.batcher.submit(gw.record_op, stale)
    assert not applied.changed
    async with gw.db.read() as conn:
        assert (await get_verification(conn, v.request_id)).state is State.SENT  # type: ignore[union-attr]


async def test_concurrent_claimers_take_each_row_once(make_gateway: object, db_url: str) -> None:
    gw = await make_gateway(start=False)  # type: ignore[operator]
    admin, _ = await _account(gw)
    account = await admin.account("acme")
    now = to_ms(gw.clock())
    batcher = WriteBatcher(gw.db)
    items = [NewVerification(
        request_id=new_request_id(), account_id=account.id, number=f"7900123{i:04d}",
        direction="RU", code="1234", resending=Resending.STOP,
        channels=(ChannelName.TELEGRAM,), callback_url=None, now_ms=now - 10,
        lease_owner="nobody", lease_until_ms=now - 5) for i in range(30)]
    created = await batcher.submit_many(CreateVerifications(gw.db), items)
    assert len(created) == 30
    await batcher.stop()

    async def claimer(i: int) -> list[str]:
        db = Database(db_url)  # its own connections, like another process
        b = WriteBatcher(db)
        taken: list[str] = []
        try:
            for _ in range(6):
                rows = await b.submit(ClaimDue(db), Claim(f"node-{i}", now, now + 60_000, 4))
                taken.extend(r.request_id for r in rows)
        finally:
            await b.stop()
            await db.dispose()
        return taken

    claimed = await asyncio.gather(*(claimer(i) for i in range(4)))
    flat = [rid for part in claimed for rid in part]
    assert len(flat) == len(set(flat)) == 30


async def test_new_messages_get_increasing_ids_and_refused_ones_none(
        make_gateway: object) -> None:
    """Message ids come with the batch's first read (PostgreSQL: from the sequence, for every
    SMS in the batch); a refused message leaves a gap, never a duplicate."""
    gw = await make_gateway(start=False)  # type: ignore[operator]
    admin, _ = await _account(gw, balance=100_000)
    account = await admin.account("acme")
    now = to_ms(gw.clock())
    batcher = WriteBatcher(gw.db)
    op = CreateVerifications(gw.db)

    def sms(i: int) -> NewVerification:
        return NewVerification(
            request_id=new_request_id(), account_id=account.id if i % 3 else 10**9,
            number=f"7900123{i:04d}", direction="RU", code="", resending=Resending.STOP,
            channels=(ChannelName.SMS,), callback_url=None, now_ms=now, lease_owner="nobody",
            lease_until_ms=now, kind="sms", text="hello", parts=1)

    try:
        first = await asyncio.gather(*(batcher.submit(op, sms(i)) for i in range(12)),
                                     return_exceptions=True)
        second = await batcher.submit_many(op, [sms(i) for i in (1, 2)])
    finally:
        await batcher.stop()
    refused = [r for i, r in enumerate(first) if i % 3 == 0]
    assert all(isinstance(r, Exception) for r in refused)
    got = [r.msg_id for i, r in enumerate(first) if i % 3]  # type: ignore[union-attr]
    ids = [i for i in got if i is not None]
    assert len(ids) == len(got) and ids == sorted(ids) and len(set(ids)) == 8
    later = [v.msg_id for v in second]
    assert later[0] is not None and later[1] is not None
    assert min(later[0], later[1]) > max(ids) and later[0] < later[1]


async def test_engine_counts_one_capture_per_delivery_under_load(make_gateway: object) -> None:
    gw = await make_gateway()  # type: ignore[operator]
    admin, key = await _account(gw, balance=100_000)
    numbers = [f"790012345{i:02d}" for i in range(40)]
    answers = await asyncio.gather(*(gw.send_code(SendCodeInput(
        api_key=key, number=n, resending="sms")) for n in numbers))
    finals = [await _final(gw, a.request_id) for a in answers]
    charged = sum(v.charged for v in finals)
    account = await admin.account("acme")
    assert account.held == 0
    assert account.balance == 100_000 - charged
    async with gw.db.read() as conn:
        captures = (await conn.execute(select(func.count()).select_from(ledger)
                                       .where(ledger.c.kind == "capture"))).scalar_one()
    assert captures == sum(1 for v in finals if v.charged)
