"""Verifications in storage: create (with the balance hold), claim due work, record outcomes
and apply delivery reports. Every op is a group-commit `BatchOp`: a batch of N items costs a
fixed handful of statements, and state, ledger and outbox rows change in the same transaction.

`version` (column `lease_token`) fences every change: a claim or a transition increments it, and
an outcome is applied only if the version it was computed from is still current. A worker whose
lease ran out and whose work was re-claimed therefore cannot apply its stale result twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.domain.cascade import (
    FINAL_STATES,
    Cursor,
    Decision,
    Policy,
    Resending,
    State,
    Step,
    Timeouts,
    next_step,
    resend_of,
)
from kaskad.domain.channels import ChannelName, Outcome, ProviderCost
from kaskad.domain.dlr import message_outcome
from kaskad.domain.errors import (
    AccountDisabled,
    KaskadError,
    NoTariff,
    NotEnoughMoney,
    NumberInGlobalSpamList,
    NumberInSpamList,
    NumberNotPermitted,
)
from kaskad.domain.ledger import EntryKind, hold_for, settle
from kaskad.domain.numbering import direction_matches
from kaskad.storage import balances
from kaskad.storage.accounts import price_in, split_directions
from kaskad.storage.batch import BatchConn, BatchOp, after_commit
from kaskad.storage.db import Database
from kaskad.storage.outbox import OutboxEntry, OutboxHandoff
from kaskad.storage.rawsql import RawSql
from kaskad.storage.schema import (
    attempts,
    verifications,
)

COLUMNS = tuple(c.name for c in verifications.columns)
SELECT_COLUMNS = ", ".join(COLUMNS)
_AT = {name: i for i, name in enumerate(COLUMNS)}
assert COLUMNS == (  # CreateVerifications builds rows positionally in this order
    "request_id", "account_id", "number", "direction", "code", "resending", "callback_url",
    "policy", "prices", "step_index", "retries", "state", "state_reason", "resend", "hold",
    "charged", "delivered_by", "created_at", "updated_at", "finished_at", "next_run_at",
    "run_step", "lease_owner", "lease_until", "lease_token", "kind", "text", "sender", "parts",
    "msg_id", "external_id", "call_to", "wait_s"), COLUMNS
_VERIFICATION_COLUMNS = (
    "step_index", "retries", "state", "state_reason", "resend", "charged", "delivered_by",
    "updated_at", "finished_at", "next_run_at", "run_step", "lease_owner", "lease_until",
    "lease_token")
_COST_COLUMNS = ("channel", "provider_ref", "request_id", "kind", "amount_micros", "currency",
                 "created_at")
_COST_REPEAT = "ON CONFLICT (channel, provider_ref, kind) DO NOTHING"


@dataclass(slots=True)
class Verification:
    """A snapshot of one verification row."""

    request_id: str
    account_id: int
    number: str
    direction: str
    code: str
    resending: str
    callback_url: str | None
    channels: tuple[ChannelName, ...]
    prices: dict[str, int]
    step_index: int
    retries: int
    state: State
    state_reason: str
    resend: str
    hold: int
    charged: int
    delivered_by: str | None
    created_at: int
    updated_at: int
    finished_at: int | None
    next_run_at: int | None
    run_step: bool
    version: int
    kind: str = "code"  # code | sms | call (see the schema)
    text: str | None = None
    sender: str | None = None
    parts: int = 1
    msg_id: int | None = None
    external_id: str | None = None
    call_to: str | None = None
    wait_s: int | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.step_index, self.retries)

    @property
    def channel(self) -> ChannelName:
        return self.channels[self.step_index]

    @property
    def current_price(self) -> int:
        """What the customer pays if the current step delivers (what it paid, once final)."""
        if self.final:
            return self.charged
        return self.prices.get(self.channel.value, 0)


@lru_cache(maxsize=64)
def _encode_channels(channels: tuple[ChannelName, ...]) -> str:
    return ",".join(c.value for c in channels)


def _encode_prices(prices: dict[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in prices.items())


@lru_cache(maxsize=4096)
def _decode_channels(text_: str) -> tuple[ChannelName, ...]:
    return tuple(ChannelName(c) for c in text_.split(","))


@lru_cache(maxsize=4096)
def _decode_prices(text_: str) -> dict[str, int]:
    """Cached and shared: callers must not mutate the result."""
    out: dict[str, int] = {}
    for part in text_.split(","):
        if part:
            k, _, v = part.partition(":")
            out[k] = int(v)
    return out




def to_verification(row: Any) -> Verification:
    """From a row whose columns are in `COLUMNS` order (a tuple, Record or Row)."""
    m = row
    a = _AT
    return Verification(
        request_id=m[a["request_id"]], account_id=m[a["account_id"]], number=m[a["number"]],
        direction=m[a["direction"]], code=m[a["code"]], resending=m[a["resending"]],
        callback_url=m[a["callback_url"]], channels=_decode_channels(m[a["policy"]]),
        prices=_decode_prices(m[a["prices"]]), step_index=m[a["step_index"]],
        retries=m[a["retries"]], state=State(m[a["state"]]),
        state_reason=m[a["state_reason"]], resend=m[a["resend"]], hold=m[a["hold"]],
        charged=m[a["charged"]], delivered_by=m[a["delivered_by"]],
        created_at=m[a["created_at"]], updated_at=m[a["updated_at"]],
        finished_at=m[a["finished_at"]], next_run_at=m[a["next_run_at"]],
        run_step=bool(m[a["run_step"]]), version=m[a["lease_token"]], kind=m[a["kind"]],
        text=m[a["text"]], sender=m[a["sender"]], parts=m[a["parts"]], msg_id=m[a["msg_id"]],
        external_id=m[a["external_id"]], call_to=m[a["call_to"]], wait_s=m[a["wait_s"]],
    )


# --------------------------------------------------------------------------- create


@dataclass(slots=True)
class NewVerification:
    request_id: str
    account_id: int
    number: str
    direction: str
    code: str
    resending: Resending
    callback_url: str | None
    channels: tuple[ChannelName, ...]
    now_ms: int
    lease_owner: str  # the creating node runs the first step at once (fast path)
    lease_until_ms: int
    kind: str = "code"
    text: str | None = None  # an SMS's own text (kind "sms"); the SMS step sends it as is
    sender: str | None = None
    parts: int = 1  # SMS parts: the SMS tariff is per part
    external_id: str | None = None
    call_to: str | None = None  # kind "call": the pool number the subscriber is to call
    wait_s: int | None = None  # kind "call": how long the wait lasts
    run_at_ms: int | None = None  # a later start (push_msg's set_aside_time); None: now


class CreateVerifications(BatchOp[NewVerification, Verification]):
    """Permission, spam and money checks, then hold + insert, for a whole batch.

    The accounts are read without a lock; the holds go to storage.balances, whose statement at
    the end of the transaction re-checks each account's available money under its lock.
    """

    name = "create_verifications"
    order = 10

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)

    async def run(self, conn: BatchConn,
                  items: Sequence[NewVerification]) -> list[Verification | Exception]:
        acct, spam, prices, numbers = await self._read(conn, items)
        results: list[Verification | Exception] = []
        money = balances.current()
        rows: list[tuple[Any, ...]] = []
        entries: list[dict[str, Any]] = []
        for item in items:
            try:
                row = self._decide(item, acct.get(item.account_id), spam, prices)
            except KaskadError as exc:
                results.append(exc)
                continue
            a = acct[item.account_id]
            hold = row[_AT["hold"]]
            a["available"] -= hold
            money.add(item.account_id, held=hold)
            rows.append(row)
            entries.append(dict(account_id=item.account_id, kind=EntryKind.HOLD.value,
                                amount=hold, request_id=item.request_id, note="",
                                created_at=item.now_ms))
            results.append(to_verification(row))
        if rows:
            await self._number_messages(conn, rows, results, numbers)
            await (self.sql.writes().insert_rows("verifications", COLUMNS, rows)
                   .insert("ledger", entries).run(conn))
        return results

    async def _number_messages(self, conn: BatchConn, rows: list[tuple[Any, ...]],
                               results: list[Verification | Exception],
                               numbers: list[int]) -> None:
        """Give each new SMS its integer id (the ssms API's): on PostgreSQL from `numbers`,
        taken from the sequence with the batch's first read; on SQLite from one counter
        update."""
        kind, msg_id = _AT["kind"], _AT["msg_id"]
        wanted = [i for i, row in enumerate(rows) if row[kind] == "sms"]
        if not wanted:
            return
        ids = numbers[:len(wanted)] if not self.sql.is_sqlite else \
            await self._message_ids(conn, len(wanted))
        by_id = {v.request_id: v for v in results if isinstance(v, Verification)}
        for number, i in zip(ids, wanted, strict=True):
            row = list(rows[i])
            row[msg_id] = number
            rows[i] = tuple(row)
            by_id[row[_AT["request_id"]]].msg_id = number

    async def _message_ids(self, conn: BatchConn, n: int) -> list[int]:
        """`n` new message ids, increasing, from the counter row (SQLite: its one writer
        serialises anyway)."""
        advance = "UPDATE counters SET value = value + ? WHERE name = 'messages' RETURNING value"
        found = await self.sql.fetch(conn, advance, n)
        if not found:  # the first message ever
            await self.sql.execute_many(
                conn, "INSERT INTO counters (name, value) VALUES (?, 0) "
                      "ON CONFLICT (name) DO NOTHING", [("messages",)])
            found = await self.sql.fetch(conn, advance, n)
        first = int(found[0][0]) - n + 1
        return list(range(first, first + n))

    async def _read(self, conn: BatchConn, items: Sequence[NewVerification]) -> tuple[
            dict[int, dict[str, Any]], set[tuple[int | None, str]],
            dict[tuple[str, str, str], int], list[int]]:
        """The batch's accounts, the spam-list entries of its numbers and the accounts'
        tariffs, read in one round trip; on PostgreSQL with it, a message id for each SMS
        (from a sequence, which takes no row lock: a counter row would make concurrent
        writers wait for each other's COMMIT; migration 0012). Ids of messages then refused
        are not used: a gap, as sequences have anyway."""
        ids = self.sql.many(sorted({i.account_id for i in items}))
        reads = [
            ("SELECT id, disabled, balance, held, allowed_directions, tariff_plan "
             "FROM accounts WHERE id IN (?*)", (ids,)),
            ("SELECT account_id, number FROM spam_list WHERE number IN (?*)",
             (self.sql.many(sorted({i.number for i in items})),)),
            ("SELECT plan, channel, direction, price FROM tariffs WHERE plan IN "
             "(SELECT tariff_plan FROM accounts WHERE id IN (?*))", (ids,))]
        if not self.sql.is_sqlite:
            reads.append(("SELECT nextval('message_ids') FROM generate_series(1, ?::int)",
                          (sum(1 for i in items if i.kind == "sms"),)))
        accounts, spam, tariffs, *numbers = await self.sql.fetch_many(conn, *reads)
        acct = {}
        for account_id, disabled, balance, held, directions, plan in accounts:
            acct[account_id] = dict(disabled=bool(disabled), available=balance - held,
                                    directions=split_directions(directions), tariff_plan=plan)
        return (acct, {(r[0], r[1]) for r in spam},
                {(r[0], r[1], r[2]): r[3] for r in tariffs},
                sorted(int(r[0]) for r in numbers[0]) if numbers else [])

    @staticmethod
    def _decide(item: NewVerification, acct: dict[str, Any] | None,
                spam: set[tuple[int | None, str]],
                table: dict[tuple[str, str, str], int]) -> tuple[Any, ...]:
        """The new row in `COLUMNS` order, or the error that refuses it."""
        if acct is None or acct["disabled"]:
            raise AccountDisabled()
        directions = acct["directions"]
        if not direction_matches(directions, item.direction):
            raise NumberNotPermitted(item.direction)
        if (None, item.number) in spam:
            raise NumberInGlobalSpamList()
        if (item.account_id, item.number) in spam:
            raise NumberInSpamList()
        prices: dict[str, int] = {}
        for channel in item.channels:
            price = price_in(table, acct["tariff_plan"], channel.value, item.direction)
            if price is None:  # we cannot bill it, so we do not send it
                raise NoTariff(f"no {channel} tariff for {item.direction}")
            prices[channel.value] = price * (item.parts if channel is ChannelName.SMS else 1)
        hold = hold_for(list(prices.values()))
        if hold > acct["available"]:
            raise NotEnoughMoney()
        now = item.now_ms
        later = item.run_at_ms is not None and item.run_at_ms > now
        run_at = item.run_at_ms if later else now
        owner, until = (None, None) if later else (item.lease_owner, item.lease_until_ms)
        return (  # in COLUMNS order (checked at import)
            item.request_id, item.account_id, item.number, item.direction, item.code,
            item.resending.value, item.callback_url, _encode_channels(item.channels),
            _encode_prices(prices), 0, 0, State.PENDING.value, "", "", hold, 0, None, now, now,
            None, run_at, True, owner, until, 1, item.kind, item.text,
            item.sender, item.parts, None, item.external_id, item.call_to, item.wait_s)


# --------------------------------------------------------------------------- claim


@dataclass(slots=True)
class Claim:
    owner: str
    now_ms: int
    lease_until_ms: int
    limit: int


class ClaimDue(BatchOp[Claim, list[Verification]]):
    """Atomically lease due verifications: one statement, correct on both backends.

    See RawSql.claim_due for why it is atomic on both backends.
    """

    name = "claim_due"
    order = 20

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)
        self._template = self.sql.claim_due(
            "verifications", "request_id", "next_run_at",
            "lease_owner = ?, lease_until = ?, lease_token = lease_token + 1", SELECT_COLUMNS)

    async def run(self, conn: BatchConn,
                  items: Sequence[Claim]) -> list[list[Verification] | Exception]:
        out: list[list[Verification] | Exception] = []
        for c in items:
            rows = await self.sql.fetch(conn, self._template, c.owner, c.lease_until_ms,
                                        c.now_ms, c.now_ms, c.now_ms, c.now_ms, c.limit)
            out.append([to_verification(r) for r in rows])
        return out


@dataclass(slots=True)
class Renewal:
    """Keep holding a verification whose step is still running (a voice call outlasts a
    lease): only while this node still holds it at `version`."""

    request_id: str
    version: int
    owner: str
    lease_until_ms: int


class RenewLeases(BatchOp[Renewal, bool]):
    name = "renew_leases"
    order = 25

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)

    async def run(self, conn: BatchConn, items: Sequence[Renewal]) -> list[bool | Exception]:
        out: list[bool | Exception] = []
        for item in items:
            rows = await self.sql.fetch(
                conn, "UPDATE verifications SET lease_until = ? WHERE request_id = ? "
                      "AND lease_token = ? AND lease_owner = ? RETURNING request_id",
                item.lease_until_ms, item.request_id, item.version, item.owner)
            out.append(bool(rows))
        return out


# --------------------------------------------------------------------------- transitions


@dataclass(slots=True)
class StepOutcome:
    """What happened to the attempt at (step_index, retries) of a verification at `version`."""

    request_id: str
    version: int
    step_index: int
    retries: int
    outcome: Outcome
    now_ms: int
    started_ms: int
    detail: str = ""
    provider_ref: str | None = None
    record_attempt: bool = True  # False for the engine's own report deadline (no attempt made)
    cost: ProviderCost | None = None
    part_refs: tuple[str, ...] = ()  # a long SMS: every part's reference (SendResult's)


@dataclass(slots=True)
class Report:
    """A delivery report from a channel, matched to its attempt by the provider's reference."""

    channel: ChannelName
    provider_ref: str
    outcome: Outcome
    now_ms: int
    detail: str = ""
    cost: ProviderCost | None = None


@dataclass(slots=True)
class Applied:
    """The result of an outcome or a report: the row after it, and whether it changed."""

    verification: Verification | None
    changed: bool
    disposition: str = "applied"

    @property
    def run_now(self) -> Verification | None:
        """The verification if this node now holds its lease and must run its next step."""
        v = self.verification
        if (self.changed and v is not None and v.run_step and not v.final
                and v.next_run_at is not None and v.next_run_at <= v.updated_at):
            return v
        return None


# The receipts that decide a message part: the others (en route, accepted) are recorded only.
_FINAL_REPORTS = (Outcome.DELIVERED, Outcome.NOT_DELIVERED)

# (method, url, body, event_id) of the customer's notification of a final state, or None
CallbackBuilder = Callable[[Verification], tuple[str, str, str, str] | None]


@dataclass
class _Writes:
    """Everything one batch changes, flushed with executemany at the end."""

    rows: dict[str, Verification] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    costs: list[tuple[Any, ...]] = field(default_factory=list)
    leases: dict[str, tuple[str, int]] = field(default_factory=dict)  # kept for run-now steps
    # Long SMS: parts of attempts recorded in this batch (new rows, by part reference), and
    # (outcome, updated_at, part reference) of stored parts whose receipt came.
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    part_outcomes: list[tuple[Any, ...]] = field(default_factory=list)


def _outcome_of(first_ref: str, parts: dict[str, dict[str, Any]]) -> Outcome | None:
    """The outcome of the long message whose first part is `first_ref` (None: not yet), from
    its parts (rows of sms_parts by part reference)."""
    return message_outcome([None if p["outcome"] is None else Outcome(p["outcome"])
                            for p in parts.values() if p["first_ref"] == first_ref])


class Transitions:
    """Shared by RecordOutcomes and ApplyReports: apply next_step() and persist its decision."""

    def __init__(self, db: Database, timeouts: Timeouts, policy_knobs: tuple[int, float],
                 callback: CallbackBuilder, node_id: str, lease_s: float) -> None:
        self.sql = RawSql(db)
        self.timeouts = timeouts
        self.max_retries, self.backoff_s = policy_knobs
        self.callback = callback
        self.node_id = node_id
        self.lease_ms = int(lease_s * 1000)
        self._policies: dict[tuple[tuple[ChannelName, ...], int | None], Policy] = {}
        # This node's callback sender, if it runs here: new outbox rows go to it at COMMIT.
        self.outbox: OutboxHandoff | None = None

    def policy(self, v: Verification) -> Policy:
        """The verification's policy; an incoming-call wait's step lasts its own `wait_s`."""
        key = (v.channels, v.wait_s)
        policy = self._policies.get(key)
        if policy is None:
            policy = Policy(tuple(Step(c, float(v.wait_s) if v.wait_s
                                       else self.timeouts.for_channel(c)) for c in v.channels),
                            self.max_retries, self.backoff_s)
            self._policies[key] = policy
        return policy

    # Verifications by request id, locked in request id order (every writer's order).
    LOAD = (f"SELECT {SELECT_COLUMNS} FROM verifications WHERE request_id IN (?*) "
            "ORDER BY request_id{lock}")

    async def load(self, conn: BatchConn, ids: set[str], w: _Writes) -> None:
        missing = sorted(ids - w.rows.keys())
        if missing:
            self.take(await self.sql.fetch(conn, self.LOAD, self.sql.many(missing)), w)

    @staticmethod
    def take(rows: Sequence[Any], w: _Writes) -> None:
        """Keep loaded rows as this batch's verifications."""
        for r in rows:
            v = to_verification(r)
            w.rows[v.request_id] = v

    def apply(self, w: _Writes, v: Verification, outcome: Outcome, now_ms: int) -> Verification:
        """Move `v` on by `outcome`. `v` belongs to this batch (loaded by it under lock), so it
        is changed in place; callers get it back as the new state."""
        policy = self.policy(v)
        d: Decision = next_step(policy, v.cursor, outcome, now_ms / 1000)
        new = v
        new.step_index, new.retries, new.state = d.cursor.step_index, d.cursor.retries, d.state
        new.state_reason = d.reason or v.state_reason
        new.resend = resend_of(policy, d.cursor)
        new.updated_at, new.run_step, new.version = now_ms, d.run_step, v.version + 1
        new.next_run_at = None if d.run_at is None else int(d.run_at * 1000)
        if d.final:
            charged = v.prices.get(d.delivered_by.value, 0) if d.delivered_by else 0
            capture, release = settle(v.hold, charged)
            new.charged, new.finished_at = charged, now_ms
            new.delivered_by = d.delivered_by.value if d.delivered_by else None
            balances.current().add(v.account_id, balance=-capture, held=-v.hold)
            for kind, amount in ((EntryKind.CAPTURE, capture), (EntryKind.RELEASE, release)):
                if amount:
                    w.ledger.append(dict(account_id=v.account_id, kind=kind.value, amount=amount,
                                         request_id=v.request_id, note="", created_at=now_ms))
            built = self.callback(new)
            if built is not None:
                method, url, body, event_id = built
                w.outbox.append(dict(event_id=event_id, account_id=v.account_id,
                                     request_id=v.request_id, method=method, url=url, body=body,
                                     attempts=0, next_attempt_at=now_ms, created_at=now_ms))
        if new.run_step and new.next_run_at is not None and new.next_run_at <= now_ms:
            # The next step is due now: this node keeps the lease and runs it at once,
            # instead of waiting for a poll (a number without Telegram falls back immediately).
            w.leases[v.request_id] = (self.node_id, now_ms + self.lease_ms)
        else:
            w.leases.pop(v.request_id, None)
        w.rows[v.request_id] = new
        w.dirty.add(v.request_id)
        return new

    async def flush(self, conn: BatchConn, w: _Writes) -> None:
        params = []
        for rid in sorted(w.dirty):
            v = w.rows[rid]
            owner, until = w.leases.get(rid, (None, None))
            params.append((v.step_index, v.retries, v.state.value, v.state_reason, v.resend,
                           v.charged, v.delivered_by, v.updated_at, v.finished_at,
                           v.next_run_at, v.run_step, owner, until, v.version, rid))
        writes = self.sql.writes().update_rows("verifications", "request_id",
                                               _VERIFICATION_COLUMNS, params)
        writes.update_rows("sms_parts", "provider_ref", ["outcome", "updated_at"],
                           w.part_outcomes)
        writes.insert("sms_parts", list(w.parts.values()))
        self._hand_over(w.outbox)
        for name, rows in (("attempts", w.attempts), ("reports", w.reports),
                           ("ledger", w.ledger), ("outbox", w.outbox)):
            writes.insert(name, rows)
        writes.insert_rows("provider_costs", _COST_COLUMNS, w.costs, _COST_REPEAT)
        await writes.run(conn)

    def _hand_over(self, rows: list[dict[str, Any]]) -> None:
        """New outbox rows go to this node's sender once they are committed, leased to it from
        the start (no claim, no poll); those it has no room for now stay unleased, and it is
        woken to claim them."""
        sink = self.outbox
        if not rows or sink is None:
            return
        room = sink.room()
        lease_ms = int(sink.lease_s * 1000)
        for i, row in enumerate(rows):
            row["lease_until"] = row["created_at"] + lease_ms if i < room else None
        if room:
            after_commit(partial(sink.deliver_now, [
                OutboxEntry(r["event_id"], r["account_id"], r["method"], r["url"], r["body"], 0,
                            None) for r in rows[:room]]))
        if len(rows) > room:
            after_commit(sink.wake)

    @staticmethod
    def cost(w: _Writes, channel: str, ref: str | None, request_id: str | None,
             cost: ProviderCost | None, now_ms: int) -> None:
        """The provider's charge (and refund) for one attempt; repeats are ignored."""
        if cost is None or not ref:
            return
        w.costs.append((channel, ref, request_id, "charge", cost.amount_micros, cost.currency,
                        now_ms))
        if cost.refunded:
            w.costs.append((channel, ref, request_id, "refund", -cost.amount_micros,
                            cost.currency, now_ms))


class RecordOutcomes(BatchOp[StepOutcome, Applied]):
    name = "record_outcomes"
    order = 30

    def __init__(self, transitions: Transitions) -> None:
        self.t = transitions

    def rendezvous_keys(self, items: Sequence[StepOutcome]) -> list[str]:
        return [ref for i in items if i.provider_ref and i.outcome is Outcome.ACCEPTED
                for ref in (i.part_refs or (i.provider_ref,))]

    async def run(self, conn: BatchConn,
                  items: Sequence[StepOutcome]) -> list[Applied | Exception]:
        w = _Writes()
        ids = self.t.sql.many(sorted({i.request_id for i in items}))
        refs = sorted({ref for i in items if i.provider_ref and i.outcome is Outcome.ACCEPTED
                       for ref in (i.part_refs or (i.provider_ref,))})
        if refs:  # reports that came before their attempt, read with the rows: one round trip
            loaded, unmatched = await self.t.sql.fetch_many(
                conn, (Transitions.LOAD, (ids,)),
                (ApplyReports.UNMATCHED, (self.t.sql.many(refs),)))
        else:
            loaded, unmatched = await self.t.sql.fetch(conn, Transitions.LOAD, ids), []
        self.t.take(loaded, w)
        out: list[Applied | Exception] = []
        accepted_refs: list[tuple[str, str]] = []
        for item in items:
            v = w.rows.get(item.request_id)
            if v is not None:
                self.t.cost(w, v.channels[item.step_index].value, item.provider_ref,
                            item.request_id, item.cost, item.now_ms)
            if v is not None and item.record_attempt:
                w.attempts.append(dict(
                    request_id=item.request_id, step_index=item.step_index,
                    channel=v.channels[item.step_index].value, outcome=item.outcome.value,
                    detail=item.detail[:500], provider_ref=item.provider_ref,
                    started_at=item.started_ms, finished_at=item.now_ms))
                if item.outcome is Outcome.ACCEPTED and item.provider_ref:
                    for index, ref in enumerate(item.part_refs, 1):
                        w.parts[ref] = dict(
                            provider_ref=ref, first_ref=item.provider_ref,
                            request_id=item.request_id, part_index=index,
                            parts=len(item.part_refs), outcome=None, updated_at=item.now_ms)
            if (v is None or v.final or v.version != item.version
                    or v.cursor != Cursor(item.step_index, item.retries)):
                out.append(Applied(v, False, "stale"))
                continue
            new = self.t.apply(w, v, item.outcome, item.now_ms)
            out.append(Applied(new, True))
            if item.outcome is Outcome.ACCEPTED and item.provider_ref:
                channel = v.channels[item.step_index].value
                accepted_refs.extend((channel, ref)
                                     for ref in (item.part_refs or (item.provider_ref,)))
        if accepted_refs:
            await ApplyReports.apply_unmatched(conn, self.t, w, accepted_refs, unmatched)
        await self.t.flush(conn, w)
        return out


class ApplyReports(BatchOp[Report, Applied]):
    """Delivery reports: applied once if they concern the step being waited on, else recorded.

    A report that arrives before its attempt's provider reference is stored (a known race with
    fast providers) is kept as `unmatched` and applied when the attempt is recorded.
    """

    name = "apply_reports"
    order = 40

    def __init__(self, transitions: Transitions) -> None:
        self.t = transitions

    def rendezvous_keys(self, items: Sequence[Report]) -> list[str]:
        return [i.provider_ref for i in items]

    async def run(self, conn: BatchConn,
                  items: Sequence[Report]) -> list[Applied | Exception]:
        w = _Writes()
        sql = self.t.sql
        refs = sql.many(sorted({i.provider_ref for i in items}))
        sms_refs = sorted({i.provider_ref for i in items if i.channel is ChannelName.SMS})
        if sms_refs:  # the parts of long messages, and the attempts by their first parts too
            part_rows, attempt_rows = await sql.fetch_many(
                conn, (self.PARTS, (sql.many(sms_refs),)),
                (self.ATTEMPTS + " UNION ALL " + self.FIRST_PARTS_ATTEMPTS,
                 (refs, sql.many(sms_refs))))
        else:
            part_rows, attempt_rows = [], await sql.fetch(conn, self.ATTEMPTS, refs)
        effective, part_of = self._messages(items, part_rows, w)
        keys = {(e.channel.value, e.provider_ref) for e in effective if e is not None}
        found = {(r[0], r[1]): (r[2], r[3]) for r in attempt_rows if (r[0], r[1]) in keys}
        await self.t.load(conn, {rid for rid, _ in found.values()}, w)
        out: list[Applied | Exception] = []
        for item, report in zip(items, effective, strict=True):
            request_id: str | None
            if report is None:  # a part of a long message that is still on its way
                applied, request_id = Applied(None, False, "part"), part_of[item.provider_ref]
            else:
                match = found.get((report.channel.value, report.provider_ref))
                applied, request_id = self._one(w, report, match), match[0] if match else None
            disposition = applied.disposition
            if report is not item and not applied.changed:
                disposition = "part"  # a part's receipt; another one decided its message
            self.t.cost(w, item.channel.value, item.provider_ref, request_id, item.cost,
                        item.now_ms)
            w.reports.append(dict(channel=item.channel.value, provider_ref=item.provider_ref,
                                  outcome=item.outcome.value, detail=item.detail[:500],
                                  request_id=request_id, disposition=disposition,
                                  received_at=item.now_ms))
            out.append(applied)
        await self.t.flush(conn, w)
        return out

    ATTEMPTS = ("SELECT channel, provider_ref, request_id, step_index FROM attempts "
                "WHERE provider_ref IN (?*)")
    FIRST_PARTS_ATTEMPTS = (
        "SELECT channel, provider_ref, request_id, step_index FROM attempts WHERE provider_ref "
        "IN (SELECT first_ref FROM sms_parts WHERE provider_ref IN (?*))")
    # Every part of the messages some receipts belong to, locked: two receipts of one message
    # written at once (two nodes) take turns, and the second sees the first.
    PARTS = ("SELECT provider_ref, first_ref, request_id, outcome FROM sms_parts "
             "WHERE first_ref IN (SELECT first_ref FROM sms_parts WHERE provider_ref "
             "IN (?*)) ORDER BY provider_ref{lock}")

    @staticmethod
    def _messages(items: Sequence[Report], rows: Sequence[Any],
                  w: _Writes) -> tuple[list[Report | None], dict[str, str]]:
        """Each report as it concerns its message: a long SMS's part's receipt is stored on
        the part, and stands for the message (under the first part's reference) once all
        parts decide it; None while the message is still on its way. Also the request id of
        every part seen (`rows`: read with PARTS)."""
        if not rows:
            return list(items), {}
        parts = {r[0]: dict(first_ref=r[1], request_id=r[2], outcome=r[3]) for r in rows}
        for item in items:
            part = parts.get(item.provider_ref) if item.channel is ChannelName.SMS else None
            if part is not None and item.outcome in _FINAL_REPORTS and part["outcome"] is None:
                part["outcome"] = item.outcome.value
                w.part_outcomes.append((item.outcome.value, item.now_ms, item.provider_ref))
        out: list[Report | None] = []
        for item in items:
            part = parts.get(item.provider_ref) if item.channel is ChannelName.SMS else None
            if part is None:
                out.append(item)
                continue
            outcome = _outcome_of(part["first_ref"], parts)
            out.append(None if outcome is None else
                       replace(item, provider_ref=part["first_ref"], outcome=outcome))
        return out, {ref: p["request_id"] for ref, p in parts.items()}

    def _one(self, w: _Writes, item: Report, match: tuple[str, int] | None) -> Applied:
        if match is None:
            return Applied(None, False, "unmatched")
        v = w.rows.get(match[0])
        if v is None:
            return Applied(None, False, "unmatched")
        waiting = not v.final and not v.run_step and v.step_index == match[1]
        if not waiting or item.outcome not in (Outcome.DELIVERED, Outcome.NOT_DELIVERED):
            return Applied(v, False, "late" if item.outcome is not Outcome.ACCEPTED else "info")
        return Applied(self.t.apply(w, v, item.outcome, item.now_ms), True)

    UNMATCHED = ("SELECT id, channel, provider_ref, outcome FROM reports "
                 "WHERE disposition = 'unmatched' AND provider_ref IN (?*) ORDER BY id")

    @staticmethod
    async def apply_unmatched(conn: BatchConn, t: Transitions, w: _Writes,
                              refs: list[tuple[str, str]], result: Sequence[Any]) -> None:
        """Apply the `unmatched` reports (`result`, read with UNMATCHED for at least `refs`)
        that belong to attempts recorded in this batch."""
        by_ref = _refs_to_ids(w, refs)
        wanted = {ref for _, ref in refs}
        done: list[tuple[str, str, int]] = []
        messages: set[str] = set()  # long messages some of whose parts' receipts came early
        for report_id, channel, ref, outcome in list(result):
            part = w.parts.get(ref) if channel == ChannelName.SMS.value else None
            if part is not None and part["first_ref"] in wanted:
                if Outcome(outcome) in _FINAL_REPORTS and part["outcome"] is None:
                    part["outcome"] = outcome
                messages.add(part["first_ref"])
                done.append((part["request_id"], "part", report_id))
                continue
            rid = by_ref.get((channel, ref))
            v = w.rows.get(rid) if rid is not None else None
            if rid is None or v is None or v.final or v.run_step:
                continue
            t.apply(w, v, Outcome(outcome), v.updated_at)
            done.append((rid, "applied", report_id))
        for first_ref in sorted(messages):
            outcome = _outcome_of(first_ref, w.parts)
            v = w.rows.get(w.parts[first_ref]["request_id"])
            if outcome is not None and v is not None and not v.final and not v.run_step:
                t.apply(w, v, outcome, v.updated_at)
        # a part's receipt belongs to its part ("part", as ApplyReports records it)
        await t.sql.update_rows(conn, "reports", "id", ["request_id", "disposition"], done)


def _refs_to_ids(w: _Writes, refs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Map (channel, provider_ref) of attempts recorded in this batch to their request ids."""
    wanted = set(refs)
    return {(a["channel"], a["provider_ref"]): a["request_id"] for a in w.attempts
            if (a["channel"], a["provider_ref"]) in wanted}


# --------------------------------------------------------------------------- reads


async def get_verification(conn: AsyncConnection, request_id: str,
                           account_id: int | None = None) -> Verification | None:
    cond = verifications.c.request_id == request_id
    if account_id is not None:
        cond = cond & (verifications.c.account_id == account_id)
    row = (await conn.execute(select(verifications).where(cond))).first()
    return None if row is None else to_verification(row)


async def list_attempts(conn: AsyncConnection, request_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(attempts).where(attempts.c.request_id == request_id)
                              .order_by(attempts.c.id))
    return [dict(r._mapping) for r in rows]


async def latest_provider_ref(conn: AsyncConnection, request_id: str,
                              step_index: int) -> str | None:
    """The provider's reference of the last accepted attempt at a step (for reconciliation)."""
    row = (await conn.execute(
        select(attempts.c.provider_ref)
        .where(attempts.c.request_id == request_id, attempts.c.step_index == step_index,
               attempts.c.provider_ref.is_not(None))
        .order_by(attempts.c.id.desc()).limit(1))).first()
    return None if row is None else str(row[0])
