"""The sandbox world: how each channel behaves for each test number.

The last digit of a number picks its behaviour, so every branch of the cascade can be driven
from the API (and the demo's README table). Rules can be overridden per digit in settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Telegram(StrEnum):
    DELIVERS = "delivers"  # accepted, then a delivered report
    ABSENT = "absent"  # the number has no Telegram: rejected at once
    SILENT = "silent"  # accepted, never reports (the cascade times out)
    EXPIRES = "expires"  # accepted, then a not-delivered report
    BUSY = "busy"  # temporarily unavailable (retries, then fallback)


class Sms(StrEnum):
    DELIVERS = "delivers"
    FAILS = "fails"  # accepted, then a not-delivered receipt
    REJECTED = "rejected"  # refused at once
    SLOW = "slow"  # delivered after the slow delay


class Voice(StrEnum):
    ANSWERS = "answers"
    NO_ANSWER = "no_answer"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Behaviour:
    telegram: Telegram
    sms: Sms
    voice: Voice
    note: str


DEFAULT_RULES: dict[str, Behaviour] = {
    "0": Behaviour(Telegram.DELIVERS, Sms.DELIVERS, Voice.ANSWERS, "Telegram delivers"),
    "1": Behaviour(Telegram.DELIVERS, Sms.DELIVERS, Voice.ANSWERS, "Telegram delivers"),
    "2": Behaviour(Telegram.DELIVERS, Sms.DELIVERS, Voice.ANSWERS, "Telegram delivers"),
    "3": Behaviour(Telegram.SILENT, Sms.DELIVERS, Voice.ANSWERS,
                   "Telegram never reports: fallback after the Telegram timeout"),
    "4": Behaviour(Telegram.ABSENT, Sms.DELIVERS, Voice.ANSWERS,
                   "no Telegram: SMS delivered, voice answered"),
    "5": Behaviour(Telegram.ABSENT, Sms.FAILS, Voice.NO_ANSWER,
                   "no Telegram: SMS not delivered, voice not answered"),
    "6": Behaviour(Telegram.EXPIRES, Sms.DELIVERS, Voice.ANSWERS,
                   "Telegram expires undelivered: fallback delivers"),
    "7": Behaviour(Telegram.BUSY, Sms.DELIVERS, Voice.ANSWERS,
                   "Telegram temporarily unavailable: retried, then fallback"),
    "8": Behaviour(Telegram.ABSENT, Sms.REJECTED, Voice.ANSWERS,
                   "no Telegram: SMS refused, voice answered"),
    "9": Behaviour(Telegram.ABSENT, Sms.SLOW, Voice.SLOW,
                   "no Telegram: SMS and voice deliver slowly"),
}


class World:
    def __init__(self, overrides: dict[str, dict[str, str]] | None = None) -> None:
        self.rules = dict(DEFAULT_RULES)
        for digit, fields in (overrides or {}).items():
            base = self.rules[digit]
            self.rules[digit] = Behaviour(
                Telegram(fields.get("telegram", base.telegram)),
                Sms(fields.get("sms", base.sms)),
                Voice(fields.get("voice", base.voice)),
                fields.get("note", base.note),
            )

    def behaviour(self, number: str) -> Behaviour:
        return self.rules[number[-1]]
