"""wait_call's pool numbers: one subscriber never waits twice at one number, however many
requests (in one process or on several nodes) ask at the same moment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kaskad.bootstrap import Gateway
from kaskad.services.admin import Admin
from kaskad.services.wait_call import PoolExhausted, WaitRequest

FAILS = "79001234565"  # never calls: the waits stay active


async def _account(gw: Gateway) -> int:
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    return (await admin.create_account("acme")).account.id


async def test_concurrent_waits_of_one_subscriber_get_different_numbers(
        make_gateway: Any) -> None:
    gw: Gateway = await make_gateway()
    account = await _account(gw)
    pool = gw.settings.telephony.pool
    waits = await asyncio.gather(*(gw.wait_call(WaitRequest(account, FAILS, 60, None))
                                   for _ in pool))
    assert sorted(w.call_to or "" for w in waits) == sorted(pool)
    with pytest.raises(PoolExhausted):
        await gw.wait_call(WaitRequest(account, FAILS, 60, None))


async def test_a_number_taken_by_another_node_meanwhile_is_chosen_again(
        make_gateway: Any) -> None:
    first: Gateway = await make_gateway()
    second: Gateway = await make_gateway()
    account = await _account(first)
    taken = await first.wait_call(WaitRequest(account, FAILS, 60, None))
    service = second.wait_call
    real_choice = service.choose_number
    offered: list[str] = []

    async def stale_choice(subscriber: str) -> str:
        # The first pick is what the other node had just stored (read before its commit).
        choice = taken.call_to or "" if not offered else await real_choice(subscriber)
        offered.append(choice)
        return choice

    service.choose_number = stale_choice  # type: ignore[method-assign]
    again = await second.wait_call(WaitRequest(account, FAILS, 60, None))
    assert offered[0] == taken.call_to and again.call_to == offered[1] != taken.call_to
