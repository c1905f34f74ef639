"""Digest authentication answers (RFC 3261 §22, RFC 2617 qop=auth) for our requests.

aiosipua computes the digest; this module picks the challenge out of a 401/407 and names the
header that answers it, so the transaction code stays free of auth details.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiosipua.auth import SipDigestAuth, build_credentials
from aiosipua.headers import parse_auth, stringify_auth


@dataclass(frozen=True, slots=True)
class DigestAnswer:
    header: str  # "Authorization" (401) or "Proxy-Authorization" (407)
    value: str


def answer(status: int, challenge: str, *, method: str, uri: str, username: str,
           password: str, nonce_count: int = 1, cnonce: str | None = None) -> DigestAnswer | None:
    """The header answering one challenge; None when it cannot be answered (e.g. auth-int)."""
    credentials = build_credentials(SipDigestAuth(username, password), parse_auth(challenge),
                                    method, uri, nonce_count=nonce_count, cnonce=cnonce)
    if credentials is None:
        return None
    header = "Proxy-Authorization" if status == 407 else "Authorization"
    return DigestAnswer(header, stringify_auth(credentials))


def challenge_header(status: int) -> str:
    return "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
