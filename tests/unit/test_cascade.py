"""The cascade policy and `next_step()`: total, monotone, and always reaching a final state."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaskad.domain.cascade import (
    FINAL_STATES,
    Cursor,
    Decision,
    Policy,
    Resending,
    State,
    Step,
    Timeouts,
    in_flight_state,
    next_step,
    policy_for,
    resend_of,
)
from kaskad.domain.channels import ChannelName, Outcome

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)

CASCADE_CHANNELS = (ChannelName.TELEGRAM, ChannelName.SMS, ChannelName.VOICE,
                    ChannelName.FLASH_CALL)
FINAL_FOR = {
    ChannelName.TELEGRAM: State.DELIVERED,
    ChannelName.SMS: State.SMS,
    ChannelName.VOICE: State.VOICE,
    ChannelName.FLASH_CALL: State.FLASH_CALL,
    ChannelName.INCOMING_CALL: State.CALL,
}
IN_FLIGHT_FOR = {
    ChannelName.TELEGRAM: State.SENT,
    ChannelName.SMS: State.SEND_SMS,
    ChannelName.VOICE: State.SEND_VOICE,
    ChannelName.FLASH_CALL: State.SEND_FLASH_CALL,
    ChannelName.INCOMING_CALL: State.WAIT_CALL,
}
FAILURE_WORD = {
    Outcome.REJECTED_PERMANENT: "rejected",
    Outcome.REJECTED_TEMPORARY: "unavailable",
    Outcome.NOT_DELIVERED: "not_delivered",
    Outcome.TIMEOUT: "timeout",
}
FALL_THROUGH = (Outcome.REJECTED_PERMANENT, Outcome.NOT_DELIVERED, Outcome.TIMEOUT)
NON_ACCEPTED = tuple(o for o in Outcome if o is not Outcome.ACCEPTED)

# --- strategies -------------------------------------------------------------------------------

seconds = st.floats(min_value=0.001, max_value=10_000.0, allow_nan=False, allow_infinity=False)
nows = st.floats(min_value=0.0, max_value=4e9, allow_nan=False, allow_infinity=False)
outcomes = st.sampled_from(list(Outcome))
timeouts = st.builds(Timeouts, telegram_s=seconds, sms_s=seconds, voice_s=seconds)

seed_policies = st.builds(policy_for, st.sampled_from(list(Resending)),
                          st.none() | timeouts)
"""Every policy the seed API can ask for."""

custom_policies = st.builds(
    Policy,
    steps=st.lists(st.builds(Step, st.sampled_from(CASCADE_CHANNELS), seconds),
                   min_size=1, max_size=5).map(tuple),
    max_temporary_retries=st.integers(min_value=0, max_value=6),
    retry_backoff_s=st.floats(min_value=0.001, max_value=100.0, allow_nan=False),
)
"""Hand-built policies over every cascading channel: the function must not rely on the seeds."""

policies = seed_policies | custom_policies


@st.composite
def policy_and_cursor(draw: st.DrawFn) -> tuple[Policy, Cursor]:
    """A policy and a cursor next_step() can actually produce for it."""
    policy = draw(policies)
    index = draw(st.integers(min_value=0, max_value=len(policy.steps) - 1))
    retries = draw(st.integers(min_value=0, max_value=policy.max_temporary_retries))
    return policy, Cursor(index, retries)


def progress_bound(policy: Policy) -> int:
    """Most non-ACCEPTED outcomes a verification can take: every step retried, then failed."""
    return len(policy.steps) * (policy.max_temporary_retries + 1)


# --- policy_for and Timeouts ------------------------------------------------------------------

@pytest.mark.parametrize(("resending", "channels"), [
    (Resending.STOP, (ChannelName.TELEGRAM,)),
    (Resending.SMS, (ChannelName.TELEGRAM, ChannelName.SMS)),
    (Resending.VOICE, (ChannelName.TELEGRAM, ChannelName.VOICE)),
])
def test_policy_for_puts_telegram_first_then_the_resending_channel(
        resending: Resending, channels: tuple[ChannelName, ...]) -> None:
    assert policy_for(resending).channels == channels


def test_policy_for_takes_report_timeouts_from_timeouts() -> None:
    t = Timeouts(telegram_s=11.0, sms_s=22.0, voice_s=33.0)
    assert [s.report_timeout_s for s in policy_for(Resending.SMS, t).steps] == [11.0, 22.0]
    assert [s.report_timeout_s for s in policy_for(Resending.VOICE, t).steps] == [11.0, 33.0]
    assert [s.report_timeout_s for s in policy_for(Resending.STOP, t).steps] == [11.0]


def test_policy_for_default_timeouts() -> None:
    d = Timeouts()
    assert [s.report_timeout_s for s in policy_for(Resending.SMS).steps] == [d.telegram_s,
                                                                              d.sms_s]
    assert [s.report_timeout_s for s in policy_for(Resending.VOICE).steps] == [d.telegram_s,
                                                                                d.voice_s]


def test_resending_values_are_the_seed_words() -> None:
    assert [r.value for r in Resending] == ["stop", "sms", "voice"]
    assert Resending("sms") is Resending.SMS


def test_timeouts_for_channel() -> None:
    t = Timeouts(telegram_s=1.0, sms_s=2.0, voice_s=3.0)
    assert t.for_channel(ChannelName.TELEGRAM) == 1.0
    assert t.for_channel(ChannelName.SMS) == 2.0
    assert t.for_channel(ChannelName.VOICE) == 3.0
    assert t.for_channel(ChannelName.FLASH_CALL) == 3.0  # calls share the voice timeout


def test_final_states_are_exactly_the_delivered_and_not_delivered_ones() -> None:
    assert frozenset(FINAL_FOR.values()) | {State.NOT_DELIVERED} == FINAL_STATES
    assert not FINAL_STATES & set(IN_FLIGHT_FOR.values())
    assert State.PENDING not in FINAL_STATES


# --- small helpers ----------------------------------------------------------------------------

@pytest.mark.parametrize("resending", list(Resending))
def test_in_flight_state_names_the_cursor_channel(resending: Resending) -> None:
    policy = policy_for(resending)
    for index, step in enumerate(policy.steps):
        assert in_flight_state(policy, Cursor(index)) is IN_FLIGHT_FOR[step.channel]
        assert in_flight_state(policy, Cursor(index, retries=2)) is IN_FLIGHT_FOR[step.channel]


def test_resend_of_is_empty_on_telegram_and_the_channel_after() -> None:
    sms = policy_for(Resending.SMS)
    voice = policy_for(Resending.VOICE)
    assert resend_of(sms, Cursor(0)) == ""
    assert resend_of(sms, Cursor(0, retries=2)) == ""
    assert resend_of(sms, Cursor(1)) == "sms"
    assert resend_of(voice, Cursor(1)) == "voice"
    assert resend_of(policy_for(Resending.STOP), Cursor(0)) == ""


@pytest.mark.parametrize("state", list(State))
def test_decision_final_is_membership_in_final_states(state: State) -> None:
    decision = Decision(Cursor(), state, "", None, False)
    assert decision.final is (state in FINAL_STATES)


# --- next_step: worked examples ---------------------------------------------------------------

def test_happy_path_in_telegram() -> None:
    policy = policy_for(Resending.SMS)
    accepted = next_step(policy, Cursor(), Outcome.ACCEPTED, now=100.0)
    assert accepted == Decision(Cursor(), State.SENT, "", 100.0 + Timeouts().telegram_s, False)
    delivered = next_step(policy, accepted.cursor, Outcome.DELIVERED, now=105.0)
    assert delivered == Decision(Cursor(), State.DELIVERED, "", None, False,
                                 ChannelName.TELEGRAM)
    assert delivered.final


def test_no_telegram_falls_back_to_sms_and_delivers_there() -> None:
    policy = policy_for(Resending.SMS, Timeouts(sms_s=300.0))
    moved = next_step(policy, Cursor(), Outcome.REJECTED_PERMANENT, now=10.0)
    assert moved == Decision(Cursor(1, 0), State.SEND_SMS, "telegram_rejected", 10.0, True)
    assert resend_of(policy, moved.cursor) == "sms"
    accepted = next_step(policy, moved.cursor, Outcome.ACCEPTED, now=11.0)
    assert accepted == Decision(Cursor(1, 0), State.SEND_SMS, "", 311.0, False)
    delivered = next_step(policy, accepted.cursor, Outcome.DELIVERED, now=20.0)
    assert delivered.state is State.SMS
    assert delivered.delivered_by is ChannelName.SMS
    assert delivered.final


def test_stop_policy_ends_not_delivered_after_telegram_fails() -> None:
    policy = policy_for(Resending.STOP)
    decision = next_step(policy, Cursor(), Outcome.TIMEOUT, now=60.0)
    assert decision == Decision(Cursor(), State.NOT_DELIVERED, "telegram_timeout", None, False)
    assert decision.final


def test_voice_policy_ends_not_delivered_after_both_steps_fail() -> None:
    policy = policy_for(Resending.VOICE)
    moved = next_step(policy, Cursor(), Outcome.NOT_DELIVERED, now=1.0)
    assert moved.cursor == Cursor(1, 0)
    assert moved.state is State.SEND_VOICE
    assert moved.reason == "telegram_not_delivered"
    end = next_step(policy, moved.cursor, Outcome.REJECTED_PERMANENT, now=2.0)
    assert end == Decision(Cursor(1, 0), State.NOT_DELIVERED, "voice_rejected", None, False)


def test_temporary_rejections_back_off_exponentially_then_fall_through() -> None:
    policy = Policy(steps=(Step(ChannelName.TELEGRAM, 60.0), Step(ChannelName.SMS, 300.0)),
                    max_temporary_retries=3, retry_backoff_s=0.5)
    cursor, now, delays = Cursor(), 1000.0, []
    for expected_retries in (1, 2, 3):
        d = next_step(policy, cursor, Outcome.REJECTED_TEMPORARY, now)
        assert d.cursor == Cursor(0, expected_retries)
        assert d.run_step is True
        assert d.state is State.PENDING  # nothing sent yet
        assert d.reason == "telegram_unavailable"
        assert d.run_at is not None
        delays.append(d.run_at - now)
        cursor = d.cursor
    assert delays == [0.5, 1.0, 2.0]
    fallen = next_step(policy, cursor, Outcome.REJECTED_TEMPORARY, now)
    assert fallen == Decision(Cursor(1, 0), State.SEND_SMS, "telegram_unavailable", now, True)


def test_zero_temporary_retries_falls_through_at_once() -> None:
    policy = Policy(steps=(Step(ChannelName.TELEGRAM, 60.0),), max_temporary_retries=0)
    d = next_step(policy, Cursor(), Outcome.REJECTED_TEMPORARY, now=5.0)
    assert d == Decision(Cursor(), State.NOT_DELIVERED, "telegram_unavailable", None, False)


def test_flash_call_step_delivers_as_flash_call() -> None:
    policy = Policy(steps=(Step(ChannelName.TELEGRAM, 1.0), Step(ChannelName.FLASH_CALL, 2.0)))
    moved = next_step(policy, Cursor(), Outcome.TIMEOUT, now=0.0)
    assert moved.state is State.SEND_FLASH_CALL
    d = next_step(policy, moved.cursor, Outcome.DELIVERED, now=1.0)
    assert d.state is State.FLASH_CALL
    assert d.delivered_by is ChannelName.FLASH_CALL


# --- next_step: properties --------------------------------------------------------------------

@DETERMINISTIC
@given(policy_and_cursor(), outcomes, nows)
def test_next_step_is_total_and_well_formed(pc: tuple[Policy, Cursor], outcome: Outcome,
                                            now: float) -> None:
    policy, cursor = pc
    d = next_step(policy, cursor, outcome, now)
    assert isinstance(d, Decision)
    assert isinstance(d.state, State)
    assert 0 <= d.cursor.step_index < len(policy.steps)
    assert d.cursor.step_index >= cursor.step_index
    assert 0 <= d.cursor.retries <= policy.max_temporary_retries
    if d.final:
        assert d.run_at is None
        assert d.run_step is False
    else:
        assert d.run_at is not None
        assert d.run_at >= now
        retrying_first_step = d.cursor.step_index == 0 and d.cursor.retries > 0 and d.run_step
        expected = State.PENDING if retrying_first_step else in_flight_state(policy, d.cursor)
        assert d.state is expected
        assert d.delivered_by is None
    assert (d.delivered_by is not None) == (d.state in FINAL_FOR.values())
    # Pure: the same question gets the same answer.
    assert next_step(policy, cursor, outcome, now) == d


@DETERMINISTIC
@given(policy_and_cursor(), nows)
def test_delivered_is_final_in_the_channel_that_delivered(pc: tuple[Policy, Cursor],
                                                          now: float) -> None:
    policy, cursor = pc
    channel = policy.steps[cursor.step_index].channel
    d = next_step(policy, cursor, Outcome.DELIVERED, now)
    assert d.final
    assert d.state is FINAL_FOR[channel]
    assert d.delivered_by is channel
    assert d.cursor == cursor
    assert d.run_at is None
    assert d.reason == ""


@DETERMINISTIC
@given(policy_and_cursor(), nows)
def test_accepted_waits_for_the_report_of_the_same_step(pc: tuple[Policy, Cursor],
                                                        now: float) -> None:
    policy, cursor = pc
    step = policy.steps[cursor.step_index]
    d = next_step(policy, cursor, Outcome.ACCEPTED, now)
    assert d.cursor == cursor
    assert d.run_at == now + step.report_timeout_s
    assert d.run_step is False
    assert d.state is IN_FLIGHT_FOR[step.channel]
    assert not d.final
    assert d.reason == ""


@DETERMINISTIC
@given(policy_and_cursor(), st.sampled_from(FALL_THROUGH), nows)
def test_failure_moves_on_at_once_or_ends_on_the_last_step(
        pc: tuple[Policy, Cursor], outcome: Outcome, now: float) -> None:
    policy, cursor = pc
    channel = policy.steps[cursor.step_index].channel
    d = next_step(policy, cursor, outcome, now)
    assert d.reason == f"{channel.value}_{FAILURE_WORD[outcome]}"
    assert d.delivered_by is None
    if cursor.step_index + 1 < len(policy.steps):
        assert d.cursor == Cursor(cursor.step_index + 1, 0)
        assert d.run_at == now
        assert d.run_step is True
        assert d.state is IN_FLIGHT_FOR[policy.steps[cursor.step_index + 1].channel]
    else:
        assert d.state is State.NOT_DELIVERED
        assert d.final
        assert d.run_at is None


@DETERMINISTIC
@given(policy_and_cursor(), nows)
def test_temporary_rejection_retries_with_backoff_then_falls_through(
        pc: tuple[Policy, Cursor], now: float) -> None:
    policy, cursor = pc
    channel = policy.steps[cursor.step_index].channel
    d = next_step(policy, cursor, Outcome.REJECTED_TEMPORARY, now)
    assert d.reason == f"{channel.value}_unavailable"
    if cursor.retries < policy.max_temporary_retries:
        assert d.cursor == Cursor(cursor.step_index, cursor.retries + 1)
        assert d.run_at == now + policy.retry_backoff_s * 2**cursor.retries
        assert d.run_step is True
        # Nothing was sent: a first step being retried is still pending.
        assert d.state is (State.PENDING if cursor.step_index == 0 else IN_FLIGHT_FOR[channel])
    else:
        # Out of retries: exactly what a permanent rejection would do (bar the reason word).
        permanent = next_step(policy, cursor, Outcome.REJECTED_PERMANENT, now)
        assert (d.cursor, d.state, d.run_at, d.run_step) == (
            permanent.cursor, permanent.state, permanent.run_at, permanent.run_step)
        if not d.final:
            assert d.cursor.retries == 0


@DETERMINISTIC
@given(policies)
def test_backoff_delays_strictly_grow(policy: Policy) -> None:
    cursor, delays = Cursor(), []
    for _ in range(policy.max_temporary_retries):
        d = next_step(policy, cursor, Outcome.REJECTED_TEMPORARY, 0.0)
        assert d.run_at is not None
        delays.append(d.run_at)
        cursor = d.cursor
    assert delays == sorted(set(delays))


@dataclass
class Walk:
    decisions: list[Decision]
    consumed: int  # non-ACCEPTED outcomes used before reaching the final state


def drive(policy: Policy, script: list[tuple[bool, Outcome]], now: float) -> Walk:
    """Feed outcomes to next_step() from Cursor() as the engine would, until a final state.

    Each script item is (accepted first?, outcome): an ACCEPTED may precede any other outcome
    (the report, or the engine's TIMEOUT), but never follows another ACCEPTED, so every item
    is progress or an ending.
    """
    cursor, decisions = Cursor(), []
    for consumed, (accepted_first, outcome) in enumerate(script, start=1):
        sequence = [Outcome.ACCEPTED, outcome] if accepted_first else [outcome]
        for o in sequence:
            d = next_step(policy, cursor, o, now)
            check_transition(policy, cursor, d, now)
            decisions.append(d)
            if d.final:
                return Walk(decisions, consumed)
            cursor = d.cursor
            now = d.run_at if d.run_at is not None else now
    return Walk(decisions, len(script) + 1)


def check_transition(policy: Policy, before: Cursor, d: Decision, now: float) -> None:
    assert d.cursor.step_index >= before.step_index
    if d.cursor.step_index == before.step_index and not d.final:
        assert d.cursor.retries >= before.retries
    expected_resend = "" if d.cursor.step_index == 0 else policy.steps[
        d.cursor.step_index].channel.value
    assert resend_of(policy, d.cursor) == expected_resend
    if not d.final:
        assert d.run_at is not None and d.run_at >= now


@st.composite
def walks(draw: st.DrawFn) -> tuple[Policy, list[tuple[bool, Outcome]]]:
    policy = draw(policies)
    script: list[tuple[bool, Outcome]] = draw(st.lists(
        st.tuples(st.booleans(), st.sampled_from(NON_ACCEPTED)),
        min_size=progress_bound(policy), max_size=progress_bound(policy)))
    return policy, script


@settings(DETERMINISTIC, max_examples=200)
@given(walks(), nows)
def test_any_outcome_sequence_reaches_a_final_state_in_bounded_steps(
        walk: tuple[Policy, list[tuple[bool, Outcome]]], now: float) -> None:
    policy, script = walk
    result = drive(policy, script, now)
    assert result.consumed <= progress_bound(policy), "no final state within the bound"
    assert len(result.decisions) <= 2 * progress_bound(policy)
    final = result.decisions[-1]
    assert final.final
    assert all(not d.final for d in result.decisions[:-1])
    indices = [d.cursor.step_index for d in result.decisions]
    assert indices == sorted(indices), "the cascade went back a step"


@DETERMINISTIC
@given(policies, nows)
def test_only_temporary_rejections_take_exactly_the_bound(policy: Policy, now: float) -> None:
    script = [(False, Outcome.REJECTED_TEMPORARY)] * progress_bound(policy)
    result = drive(policy, script, now)
    assert result.consumed == progress_bound(policy)
    last = result.decisions[-1]
    assert last.state is State.NOT_DELIVERED
    assert last.reason == f"{policy.steps[-1].channel.value}_unavailable"
    assert last.cursor.step_index == len(policy.steps) - 1


@DETERMINISTIC
@given(policies, nows, st.integers(min_value=0, max_value=4))
def test_delivery_after_failures_names_the_step_that_delivered(
        policy: Policy, now: float, failures: int) -> None:
    failures = min(failures, len(policy.steps) - 1)
    script = [(True, Outcome.TIMEOUT)] * failures + [(True, Outcome.DELIVERED)]
    result = drive(policy, script, now)
    final = result.decisions[-1]
    channel = policy.steps[failures].channel
    assert final.cursor.step_index == failures
    assert final.state is FINAL_FOR[channel]
    assert final.delivered_by is channel
    assert resend_of(policy, final.cursor) == ("" if failures == 0 else channel.value)
