"""Building the requests of one outgoing call: INVITE, CANCEL, the 2xx ACK, BYE, auth retries."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from aiosipua.message import SipRequest, SipResponse
from aiosipua.utils import generate_call_id, generate_tag

from kaskad.channels.telephony.digest import answer, challenge_header
from kaskad.channels.telephony.stack import SipStack
from kaskad.channels.telephony.transactions import Kind


@dataclass
class OutgoingDialog:
    """The state RFC 3261 §12 keeps for a call we place, enough to ACK, CANCEL and BYE it."""

    stack: SipStack
    kind: Kind
    request_uri: str
    from_header: str
    to_header: str
    call_id: str = field(default_factory=lambda: generate_call_id("kaskad"))
    cseq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    remote_target: str = ""
    route: list[str] = field(default_factory=list)
    remote_to: str = ""  # the To header with the callee's tag, once a response carried it

    @classmethod
    def create(cls, stack: SipStack, kind: Kind, *, callee: str, caller: str, domain: str,
               display: str = "") -> OutgoingDialog:
        name = f'"{display}" ' if display else ""
        return cls(stack, kind, request_uri=f"sip:{callee}@{domain}",
                   from_header=f"{name}<sip:{caller}@{domain}>;tag={generate_tag()}",
                   to_header=f"<sip:{callee}@{domain}>")

    def _base(self, method: str, uri: str, seq: int, branch: str | None = None) -> SipRequest:
        request = SipRequest(method=method, uri=uri)
        request.add_header("Via", self.stack.via(self.kind, branch))
        request.set_header("Max-Forwards", "70")
        for route in self.route:
            request.add_header("Route", route)
        request.set_header("From", self.from_header)
        request.set_header("To", self.remote_to or self.to_header)
        request.set_header("Call-ID", self.call_id)
        request.set_header("CSeq", f"{seq} {method}")
        return request

    def invite(self, caller_user: str, sdp: bytes) -> SipRequest:
        request = self._base("INVITE", self.request_uri, next(self.cseq))
        request.set_header("Contact", self.stack.contact(caller_user, self.kind))
        request.set_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
        request.set_header("Content-Type", "application/sdp")
        request.body = sdp
        return request

    def cancel(self, invite: SipRequest) -> SipRequest:
        """Same branch, Request-URI, Call-ID, From, To and CSeq number as the INVITE (§9.1)."""
        cancel = SipRequest(method="CANCEL", uri=invite.uri)
        cancel.add_header("Via", invite.headers.get("via")[0])
        for name in ("route", "from", "to", "call-id"):
            for value in invite.headers.get(name):
                cancel.add_header(name, value)
        seq = invite.cseq.seq if invite.cseq else 1
        cancel.set_header("CSeq", f"{seq} CANCEL")
        cancel.set_header("Max-Forwards", "70")
        return cancel

    def confirm(self, invite: SipRequest, ok: SipResponse) -> SipRequest:
        """Take the dialog's remote side from the 2xx and build its ACK (a new transaction)."""
        self.remote_to = ok.headers.get_first("to") or self.to_header
        contacts = ok.headers.get("contact")
        self.remote_target = _uri_of(contacts[0]) if contacts else invite.uri
        self.route = list(reversed(ok.headers.get("record-route")))
        seq = invite.cseq.seq if invite.cseq else 1
        return self._base("ACK", self.remote_target, seq)

    def bye(self) -> SipRequest:
        return self._base("BYE", self.remote_target or self.request_uri, next(self.cseq))

    def authorised(self, request: SipRequest, challenge: SipResponse, username: str,
                   password: str) -> SipRequest | None:
        """The request again with a new branch and CSeq, answering a 401/407; None if impossible."""
        raw = challenge.headers.get_first(challenge_header(challenge.status_code))
        if not raw or not username:
            return None
        reply = answer(challenge.status_code, raw, method=request.method, uri=request.uri,
                       username=username, password=password)
        if reply is None:
            return None
        retry = self._base(request.method, request.uri, next(self.cseq))
        for name in ("contact", "allow", "content-type", "expires"):
            value = request.headers.get_first(name)
            if value:
                retry.set_header(name, value)
        retry.set_header(reply.header, reply.value)
        retry.body = request.body
        return retry


def _uri_of(address: str) -> str:
    value = address.strip()
    if "<" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0]

