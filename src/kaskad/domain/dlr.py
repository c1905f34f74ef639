"""SMPP delivery receipts: parsed from TLVs or from the text form, mapped onto our outcomes
and onto the ssms-family message states.

The text form (SMPP 3.4 appendix B, and what most SMSCs actually send):
`id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:…`.
TLVs `receipted_message_id` (0x001E) and `message_state` (0x0427) win when present. SMSCs
disagree on the id's base (hex in submit_sm_resp, decimal in the receipt, or the reverse): each
connector says which its SMSC does (`receipt_ids`), and `matching_id` brings both to one form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from kaskad.domain.channels import Outcome

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
ESM_CLASS_RECEIPT = 0x04  # esm_class bits 2-5 = 0001: SMSC delivery receipt


class MessageState(IntEnum):
    """SMPP 3.4 §5.2.28 message_state, with the receipt's seven-letter `stat` words."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def stat(self) -> str:
        return STAT_WORDS[self]

    @property
    def outcome(self) -> Outcome | None:
        """None while the message is still on its way."""
        if self is MessageState.DELIVERED:
            return Outcome.DELIVERED
        if self in (MessageState.ENROUTE, MessageState.ACCEPTED):
            return None
        return Outcome.NOT_DELIVERED

    @property
    def ssms_state(self) -> int:
        return SSMS_STATE[self]


STAT_WORDS = {
    MessageState.ENROUTE: "ENROUTE", MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED", MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV", MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN", MessageState.REJECTED: "REJECTD",
}
_BY_STAT = {word: state for state, word in STAT_WORDS.items()}
_BY_STAT.update({"DELIVERED": MessageState.DELIVERED, "UNDELIVERABLE": MessageState.UNDELIVERABLE,
                 "REJECTED": MessageState.REJECTED, "ACCEPTED": MessageState.ACCEPTED})



def parse_stat(word: str) -> MessageState | None:
    """A receipt's stat word (the first word of a stored report's detail), if it is one."""
    head = word.split(" ", 1)[0].upper() if word else ""
    return _BY_STAT.get(head)


# The ssms-family state codes (spec/ssms-api.md §7) and their texts, Russian first.
SSMS_SENT, SSMS_DELIVERED, SSMS_NOT_DELIVERED = 0, 1, 2
SSMS_QUEUED, SSMS_ACCEPTED, SSMS_REJECTED, SSMS_EXPIRED = 4, 8, 16, 34
SSMS_STATE = {
    MessageState.ENROUTE: SSMS_QUEUED, MessageState.DELIVERED: SSMS_DELIVERED,
    MessageState.EXPIRED: SSMS_EXPIRED, MessageState.DELETED: SSMS_NOT_DELIVERED,
    MessageState.UNDELIVERABLE: SSMS_NOT_DELIVERED, MessageState.ACCEPTED: SSMS_ACCEPTED,
    MessageState.UNKNOWN: SSMS_NOT_DELIVERED, MessageState.REJECTED: SSMS_REJECTED,
}
SSMS_STATE_TEXT = {
    SSMS_SENT: ("Отправлено", "Sent"),
    SSMS_DELIVERED: ("Доставлено", "Delivered"),
    SSMS_NOT_DELIVERED: ("Не доставлено", "Not delivered"),
    SSMS_QUEUED: ("В очереди SMSC", "Queued at the SMSC"),
    SSMS_ACCEPTED: ("Принято SMSC", "Accepted by the SMSC"),
    SSMS_REJECTED: ("Не доставлено в SMSC", "Rejected by the SMSC"),
    SSMS_EXPIRED: ("Не доставлено (просрочено)", "Not delivered (expired)"),
}

_FIELD = re.compile(r"(?<![A-Za-z])(id|sub|dlvrd|submit date|done date|stat|err)\s*:\s*(\S*)",
                    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    state: MessageState
    error: str = ""
    submitted: str = ""  # YYMMDDhhmm[ss] as the SMSC wrote it
    done: str = ""


def parse_receipt_text(text: str) -> Receipt | None:
    """The text form; None when it is not a receipt (no id or no known stat)."""
    head, _, _ = text.partition(" text:")  # the original text may contain anything
    fields = {k.lower(): v for k, v in _FIELD.findall(head)}
    message_id, stat = fields.get("id", ""), fields.get("stat", "").upper()
    state = _BY_STAT.get(stat)
    if not message_id or state is None:
        return None
    return Receipt(message_id, state, fields.get("err", ""), fields.get("submit date", ""),
                   fields.get("done date", ""))


def receipt_from_pdu(tlvs: dict[int, bytes], short_message: bytes) -> Receipt | None:
    """A deliver_sm's receipt: TLVs first, the text form for what they lack."""
    text = short_message.decode("latin-1", errors="replace")
    parsed = parse_receipt_text(text)
    raw_id = tlvs.get(TLV_RECEIPTED_MESSAGE_ID)
    raw_state = tlvs.get(TLV_MESSAGE_STATE)
    message_id = raw_id.rstrip(b"\x00").decode("ascii", "replace") if raw_id else None
    state = None
    if raw_state and raw_state[0] in MessageState._value2member_map_:
        state = MessageState(raw_state[0])
    if message_id is None and state is None:
        return parsed
    message_id = message_id or (parsed.message_id if parsed else None)
    state = state or (parsed.state if parsed else None)
    if not message_id or state is None:
        return None
    return Receipt(message_id, state, parsed.error if parsed else "",
                   parsed.submitted if parsed else "", parsed.done if parsed else "")


def format_receipt(message_id: str, state: MessageState, *, submitted: str, done: str,
                   error: str = "000", text: str = "") -> str:
    """The text form, as an SMSC (our simulator) writes it."""
    delivered = "001" if state is MessageState.DELIVERED else "000"
    return (f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submitted} "
            f"done date:{done} stat:{state.stat} err:{error} text:{text[:20]}")


def message_outcome(parts: Sequence[Outcome | None]) -> Outcome | None:
    """A long message's outcome from its parts' final receipts (None: no final one yet).

    The subscriber has the message only when every part arrived, so it is delivered when all
    parts are, and not delivered as soon as one part is not (the rest cannot make it whole).
    Until then it is still on its way.
    """
    if any(p is Outcome.NOT_DELIVERED for p in parts):
        return Outcome.NOT_DELIVERED
    if parts and all(p is Outcome.DELIVERED for p in parts):
        return Outcome.DELIVERED
    return None


def matching_id(message_id: str, receipt_ids: str, *, in_receipt: bool) -> str:
    """The form of an SMSC's message id that its submit_sm_resp and its receipts share.

    `receipt_ids` is the connector's setting: "same" (ids as given), "decimal" (hex ids in
    submit_sm_resp, their decimal reading in receipts) or "hex" (the reverse). Both sides are
    brought to the decimal reading, which also drops the case and leading zeros a hex id may
    be written with. An id that does not read in the expected base is kept as it is.
    """
    if receipt_ids == "same":
        return message_id
    hex_side = (receipt_ids == "hex") == in_receipt
    try:
        return str(int(message_id.strip(), 16 if hex_side else 10))
    except ValueError:
        return message_id
