"""One-time form tokens (schema table `web_form_tokens`): a form that must act once carries
one; using it is a conditional UPDATE in the transaction of the change, so of two submits of
the same form (a double click, a resend after a timeout) exactly one goes through, on SQLite
and on PostgreSQL alike (there the second UPDATE waits for the first and then matches no row)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.schema import web_form_tokens as tokens


class Use(StrEnum):
    FRESH = "fresh"  # used up now: go ahead
    USED = "used"  # sent before: the change is already made
    UNKNOWN = "unknown"  # expired, forged, or another session's or form's


async def issue(conn: AsyncConnection, token_hash: str, session_hash: str, purpose: str,
                now_ms: int, expires_ms: int) -> None:
    await conn.execute(insert(tokens).values(
        token_hash=token_hash, session_hash=session_hash, purpose=purpose,
        expires_at=expires_ms))
    # Whoever issues sweeps the expired ones: no background job needed.
    await conn.execute(delete(tokens).where(tokens.c.expires_at <= now_ms))


async def use(conn: AsyncConnection, token_hash: str, session_hash: str, purpose: str,
              now_ms: int) -> Use:
    mine = (tokens.c.token_hash == token_hash, tokens.c.session_hash == session_hash,
            tokens.c.purpose == purpose, tokens.c.expires_at > now_ms)
    result = await conn.execute(update(tokens).where(*mine, tokens.c.used_at.is_(None))
                                .values(used_at=now_ms))
    if result.rowcount == 1:
        return Use.FRESH
    used = (await conn.execute(select(tokens.c.used_at).where(*mine))).scalar()
    return Use.USED if used is not None else Use.UNKNOWN
