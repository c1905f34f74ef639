"""The cascade: a verification's policy as data, and the pure function that moves it on.

`next_step()` is the only place that decides what happens after an outcome; the engine only
persists its decisions, and channels never decide the fallback themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kaskad.domain.channels import ChannelName, Outcome


class Resending(StrEnum):
    """The seed API's `resending`: where the code goes when the number has no Telegram."""

    STOP = "stop"
    SMS = "sms"
    VOICE = "voice"


class State(StrEnum):
    """States a customer sees (seed 002 names the final ones; the rest are documented ours)."""

    PENDING = "pending"  # accepted by kaskad, first step's outcome not known yet
    SENT = "sent"  # Telegram took the code; waiting for its delivery report
    SEND_SMS = "send_sms"  # falling back: the code is on its way by SMS
    SEND_VOICE = "send_voice"  # falling back: the code is on its way by a voice call
    SEND_FLASH_CALL = "send_flash_call"
    WAIT_CALL = "wait_call"  # waiting for the subscriber's incoming call (wait_call)
    DELIVERED = "delivered"  # final: delivered in Telegram
    SMS = "sms"  # final: delivered by SMS
    VOICE = "voice"  # final: delivered by a voice call
    FLASH_CALL = "flash_call"  # final: delivered by a flash call
    CALL = "call"  # final: confirmed by the subscriber's incoming call
    NOT_DELIVERED = "not_delivered"  # final: every step failed


FINAL_STATES = frozenset({State.DELIVERED, State.SMS, State.VOICE, State.FLASH_CALL,
                          State.CALL, State.NOT_DELIVERED})

_FINAL_FOR = {
    ChannelName.TELEGRAM: State.DELIVERED,
    ChannelName.SMS: State.SMS,
    ChannelName.VOICE: State.VOICE,
    ChannelName.FLASH_CALL: State.FLASH_CALL,
    ChannelName.INCOMING_CALL: State.CALL,
}
_IN_FLIGHT_FOR = {
    ChannelName.TELEGRAM: State.SENT,
    ChannelName.SMS: State.SEND_SMS,
    ChannelName.VOICE: State.SEND_VOICE,
    ChannelName.FLASH_CALL: State.SEND_FLASH_CALL,
    ChannelName.INCOMING_CALL: State.WAIT_CALL,
}
_FAILURE_WORD = {
    Outcome.REJECTED_PERMANENT: "rejected",
    Outcome.REJECTED_TEMPORARY: "unavailable",
    Outcome.NOT_DELIVERED: "not_delivered",
    Outcome.TIMEOUT: "timeout",
}


@dataclass(frozen=True, slots=True)
class Step:
    channel: ChannelName
    report_timeout_s: float  # how long an accepted attempt may wait for its delivery report


@dataclass(frozen=True, slots=True)
class Policy:
    steps: tuple[Step, ...]
    max_temporary_retries: int = 2
    retry_backoff_s: float = 1.0

    @property
    def channels(self) -> tuple[ChannelName, ...]:
        return tuple(step.channel for step in self.steps)


@dataclass(frozen=True, slots=True)
class Timeouts:
    telegram_s: float = 60.0
    sms_s: float = 300.0
    voice_s: float = 90.0

    def for_channel(self, channel: ChannelName) -> float:
        return {
            ChannelName.TELEGRAM: self.telegram_s,
            ChannelName.SMS: self.sms_s,
        }.get(channel, self.voice_s)


def policy_for(resending: Resending, timeouts: Timeouts | None = None) -> Policy:
    """Telegram first, then the customer's `resending` channel (none for `stop`)."""
    timeouts = timeouts or Timeouts()
    channels = [ChannelName.TELEGRAM]
    if resending is Resending.SMS:
        channels.append(ChannelName.SMS)
    elif resending is Resending.VOICE:
        channels.append(ChannelName.VOICE)
    return Policy(steps=tuple(Step(c, timeouts.for_channel(c)) for c in channels))


@dataclass(slots=True)
class Cursor:
    """Where a verification is in its policy."""

    step_index: int = 0
    retries: int = 0


@dataclass(slots=True)
class Decision:
    """What the engine must persist after an outcome."""

    cursor: Cursor
    state: State
    reason: str
    run_at: float | None  # when the engine acts next; None when final
    run_step: bool  # True: run cursor's step at run_at; False: run_at is a report deadline
    delivered_by: ChannelName | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


def in_flight_state(policy: Policy, cursor: Cursor) -> State:
    return _IN_FLIGHT_FOR[policy.steps[cursor.step_index].channel]


def resend_of(policy: Policy, cursor: Cursor) -> str:
    """The seed's `resend`: the channel the code went to instead of Telegram, else ""."""
    if cursor.step_index == 0:
        return ""
    return policy.steps[cursor.step_index].channel.value


def next_step(policy: Policy, cursor: Cursor, outcome: Outcome, now: float) -> Decision:
    """Decide what follows `outcome` of the attempt at `cursor`. Pure and total."""
    step = policy.steps[cursor.step_index]
    if outcome is Outcome.DELIVERED:
        return Decision(cursor, _FINAL_FOR[step.channel], "", None, False, step.channel)
    if outcome is Outcome.ACCEPTED:
        return Decision(cursor, in_flight_state(policy, cursor), "", now + step.report_timeout_s,
                        False)
    reason = f"{step.channel.value}_{_FAILURE_WORD[outcome]}"
    if outcome is Outcome.REJECTED_TEMPORARY and cursor.retries < policy.max_temporary_retries:
        delay = policy.retry_backoff_s * (2**cursor.retries)
        retry = Cursor(cursor.step_index, cursor.retries + 1)
        # Nothing was sent: the first step is still pending, a fallback still "on its way".
        state = State.PENDING if cursor.step_index == 0 else in_flight_state(policy, cursor)
        return Decision(retry, state, reason, now + delay, True)
    following = cursor.step_index + 1
    if following < len(policy.steps):
        moved = Cursor(following, 0)
        return Decision(moved, in_flight_state(policy, moved), reason, now, True)
    return Decision(cursor, State.NOT_DELIVERED, reason, None, False)
