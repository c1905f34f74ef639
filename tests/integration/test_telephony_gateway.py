"""Telephony inside the gateway, over real SIP to the sandbox phone network, on both databases:
seed 002's `resending: voice`, a flash call by push_msg's `route=pc`, and seed 001's wait_call
confirmed by a call that arrives at our SIP endpoint (486, the hook called once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import select

from kaskad.api.app import create_app
from kaskad.bootstrap import Gateway
from kaskad.channels.telephony import prompts
from kaskad.channels.telephony.rtp import packetise
from kaskad.services.admin import Admin
from kaskad.services.messages import get_message
from kaskad.services.send_code import SendCodeInput
from kaskad.services.wait_call import WaitRequest
from kaskad.simulators.phones import PhoneNetwork
from kaskad.storage.schema import incoming_calls
from tests.helpers import callback_transport
from tests.integration.test_seed_api import eventually

ANSWERS = "79001234564"  # no Telegram; the phone answers
NEVER = "79001234565"  # no Telegram; the phone rings and nobody answers


class Hooks:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


@pytest.fixture
async def sip_gateway(make_gateway: Any) -> AsyncIterator[tuple[Gateway, str, Hooks]]:
    # A voice call plays its prompt for ~7 s inside one step: the lease must outlast it.
    gw: Gateway = await make_gateway(telephony_mode="simulator", lease_s=30.0)
    admin = Admin(gw.db, test_balance_kop=5000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account("acme")).api_key
    hooks = Hooks()
    gw.callbacks.transport = callback_transport(hooks.handle)
    yield gw, key, hooks


def phones_of(gw: Gateway) -> PhoneNetwork:
    phones = gw.telephony.phones
    assert isinstance(phones, PhoneNetwork)
    return phones


async def test_resending_voice_calls_and_plays_the_code(
        sip_gateway: tuple[Gateway, str, Hooks]) -> None:
    gw, key, _ = sip_gateway
    answered = await gw.send_code(SendCodeInput(api_key=key, number=ANSWERS, resending="voice"))
    unanswered = await gw.send_code(SendCodeInput(api_key=key, number=NEVER,
                                                  resending="voice"))
    done = await gw.await_state(answered.request_id, lambda v: v.final, 30)
    lost = await gw.await_state(unanswered.request_id, lambda v: v.final, 30)
    assert done is not None and done.state.value == "voice" and done.charged == 450
    assert lost is not None and lost.state.value == "not_delivered" and lost.charged == 0
    phones = phones_of(gw)
    [call] = [c for c in phones.calls if c.number == ANSWERS]
    await phones.wait_until(lambda: call.ended.is_set())
    assert call.answered and call.hung_up_by_caller
    assert call.packets == len(packetise(prompts.assemble(answered.code, "ru")))
    account = await Admin(gw.db, test_balance_kop=0, default_directions=[]).account("acme")
    assert (account.balance, account.held) == (5000 - 450, 0)


async def test_flash_call_shows_the_code_in_the_caller_id(
        sip_gateway: tuple[Gateway, str, Hooks]) -> None:
    gw, key, _ = sip_gateway
    app = create_app(gw, manage_gateway=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://kaskad.test") as client:
        r = await client.post("/", data={"method": "push_msg", "format": "json", "key": key,
                                         "phone": ANSWERS, "text": "Код входа 4821",
                                         "route": "pc"})
        data = orjson.loads(r.content)["response"]["data"]
    phones = phones_of(gw)
    await phones.wait_until(lambda: any(c.number == ANSWERS for c in phones.calls))
    [call] = [c for c in phones.calls if c.number == ANSWERS]
    await phones.wait_until(lambda: call.ended.is_set())
    assert call.caller_id.endswith("4821") and call.cancelled and call.final_acked
    assert not call.answered
    async with gw.db.read() as conn:
        found = await get_message(conn, 1, data["id"])
    assert found is not None
    done = await gw.await_state(found[0].request_id, lambda v: v.final, 10)
    assert done is not None and done.delivered_by == "flash_call" and done.charged == 100


async def test_wait_call_confirmed_over_sip(sip_gateway: tuple[Gateway, str, Hooks]) -> None:
    """The sandbox subscriber calls our pool number over SIP by themselves; unknown callers
    and other numbers are refused and confirm nothing; the hook is called once."""
    gw, _key, hooks = sip_gateway
    account_id = (await Admin(gw.db, test_balance_kop=0,
                              default_directions=[]).account("acme")).id
    wait = await gw.wait_call(WaitRequest(account_id, ANSWERS, 60,
                                          "http://customer.test/call?s=1"))
    done = await gw.await_state(wait.request_id, lambda v: v.final, 15)
    assert done is not None and done.state.value == "call"
    phones = phones_of(gw)
    address = gw.telephony.address
    assert address is not None and wait.call_to is not None
    assert await phones.call("79001112233", wait.call_to, address) == 486  # nobody waits
    assert await phones.call(ANSWERS, "74990000000", address) == 404  # not our number
    assert await phones.call(ANSWERS, wait.call_to, address) == 486  # again: no second hook
    await gw.callbacks.run_once()
    assert len(hooks.requests) == 1
    query = parse_qs(urlsplit(str(hooks.requests[0].url)).query)
    assert query["id_call"] == [wait.request_id] and query["phone"] == [ANSWERS]
    async def recorded() -> list[Any]:
        async with gw.db.read() as conn:
            return list((await conn.execute(
                select(incoming_calls.c.caller, incoming_calls.c.disposition)
                .order_by(incoming_calls.c.id))).all())

    rows = await eventually(lambda: _at_least(recorded, 4), "four recorded calls")
    assert [tuple(r) for r in rows] == [(ANSWERS, "matched"), ("79001112233", "unknown"),
                                        (ANSWERS, "not_ours"), (ANSWERS, "repeat")]


async def _at_least(probe: Any, n: int) -> Any:
    rows = await probe()
    return rows if len(rows) >= n else None
