"""SMPP 3.4 facts the SMS channel needs, as pure functions: what a submit_sm_resp status means
for the message, the UDH that concatenates parts (kaskad.domain.sms makes the parts), and the
submit_sm PDU itself."""

from __future__ import annotations

import struct
from enum import StrEnum

ESME_ROK = 0x00
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
# Statuses after which the same message can never succeed on any bind: the number, the
# sender, the text or the account is wrong.
PERMANENT = frozenset({
    0x01,  # ESME_RINVMSGLEN
    0x02,  # ESME_RINVCMDLEN
    0x0A,  # ESME_RINVSRCADR
    0x0B,  # ESME_RINVDSTADR
    0x0C,  # ESME_RINVMSGID
    0x33,  # ESME_RINVNUMDESTS
    0x43,  # ESME_RINVESMCLASS
    0x48,  # ESME_RINVSRCTON
    0x49,  # ESME_RINVSRCNPI
    0x50,  # ESME_RINVDSTTON
    0x51,  # ESME_RINVDSTNPI
    0x61,  # ESME_RINVSCHED
    0x62,  # ESME_RINVEXPIRY
    0x65,  # ESME_RX_P_APPN: permanent application error
    0x66,  # ESME_RX_R_APPN: rejected by the application
})
THROTTLED = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
UDHI = 0x40  # esm_class: the short_message starts with a user data header


class SubmitVerdict(StrEnum):
    ACCEPTED = "accepted"
    THROTTLED = "throttled"  # slow down and submit the same part again; not a failure
    PERMANENT = "permanent"
    TEMPORARY = "temporary"  # another try (or another bind / route) may work


def classify_status(status: int) -> SubmitVerdict:
    if status == ESME_ROK:
        return SubmitVerdict.ACCEPTED
    if status in THROTTLED:
        return SubmitVerdict.THROTTLED
    if status in PERMANENT:
        return SubmitVerdict.PERMANENT
    return SubmitVerdict.TEMPORARY  # system errors, submit failures and unknown codes


def udh(reference: int, total: int, sequence: int) -> bytes:
    """The 6-octet concatenation header (IEI 0x00, 8-bit reference)."""
    if not (1 <= sequence <= total <= 255 and 0 <= reference <= 255):
        raise ValueError("bad concatenation parameters")
    return bytes((0x05, 0x00, 0x03, reference, total, sequence))


SUBMIT_SM = 0x00000004
_HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number


def submit_sm_body(*, source: str, source_ton: int, source_npi: int, destination: str,
                   dest_ton: int, dest_npi: int, esm_class: int, registered_delivery: int,
                   data_coding: int, short_message: bytes) -> bytes:
    """The mandatory parameters of a submit_sm (SMPP 3.4 section 4.4.1), in order: an empty
    service_type, the addresses (C-Octet strings of at most 20 characters), esm_class,
    protocol_id 0, priority 0, no schedule nor validity (the SMSC's defaults), the receipt
    request, replace_if_present 0, data_coding, sm_default_msg_id 0 and the message (at most
    254 octets, UDH included). No optional parameters."""
    for name, address in (("source", source), ("destination", destination)):
        if len(address) > 20 or not address.isascii() or "\0" in address:
            raise ValueError(f"{name} address must be at most 20 ASCII characters")
    if len(short_message) > 254:
        raise ValueError("short_message is at most 254 octets")
    return b"".join((
        b"\0", bytes((source_ton, source_npi)), source.encode(), b"\0",
        bytes((dest_ton, dest_npi)), destination.encode(), b"\0",
        bytes((esm_class, 0, 0)), b"\0\0",
        bytes((registered_delivery, 0, data_coding, 0, len(short_message))), short_message))


def pdu(command_id: int, sequence: int, body: bytes, status: int = 0) -> bytes:
    """A whole PDU: the 16-octet header, then `body`."""
    return _HEADER.pack(16 + len(body), command_id, status, sequence) + body


# The command_status names of SMPP 3.4 (section 5.1.3); other codes are shown in hex.
STATUS_NAMES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x06: "ESME_RINVPRTFLG",
    0x07: "ESME_RINVREGDLVFLG", 0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID", 0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP",
    0x33: "ESME_RINVNUMDESTS", 0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG",
    0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS", 0x44: "ESME_RCNTSUBDL",
    0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP",
    0x54: "ESME_RINVREPFLAG", 0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY", 0x63: "ESME_RINVDFTMSGID",
    0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN", 0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"0x{status:08X}")
