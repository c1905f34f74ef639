"""The cabinet's server-side sessions (schema table `web_sessions`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.schema import accounts, web_sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    token_hash: str
    account_id: int
    csrf: str
    is_admin: bool
    disabled: bool
    email: str | None
    expires_at: int


async def create(conn: AsyncConnection, token_hash: str, account_id: int, csrf: str,
                 now_ms: int, expires_ms: int) -> None:
    await conn.execute(insert(web_sessions).values(
        token_hash=token_hash, account_id=account_id, csrf=csrf, created_at=now_ms,
        expires_at=expires_ms))
    # Whoever logs in sweeps the account's expired sessions: no background job needed.
    await conn.execute(delete(web_sessions).where(web_sessions.c.account_id == account_id,
                                                  web_sessions.c.expires_at <= now_ms))


async def find(conn: AsyncConnection, token_hash: str, now_ms: int) -> SessionRow | None:
    """A live session and what the pages need of its account, in one query."""
    row = (await conn.execute(
        select(web_sessions.c.token_hash, web_sessions.c.account_id, web_sessions.c.csrf,
               accounts.c.is_admin, accounts.c.disabled, accounts.c.email,
               web_sessions.c.expires_at)
        .select_from(web_sessions.join(accounts, web_sessions.c.account_id == accounts.c.id))
        .where(web_sessions.c.token_hash == token_hash,
               web_sessions.c.expires_at > now_ms))).first()
    if row is None:
        return None
    return SessionRow(row[0], int(row[1]), row[2], bool(row[3]), bool(row[4]), row[5],
                      int(row[6]))


async def remove(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash))


async def remove_others(conn: AsyncConnection, account_id: int, keep_hash: str) -> None:
    """After a password change: every other browser logged in as this account is logged out."""
    await conn.execute(delete(web_sessions).where(web_sessions.c.account_id == account_id,
                                                  web_sessions.c.token_hash != keep_hash))


async def extend(conn: AsyncConnection, token_hash: str, expires_ms: int) -> None:
    """Slide an idle-expiring session's end (the ssms API's: 24 minutes after its last use)."""
    await conn.execute(web_sessions.update().where(web_sessions.c.token_hash == token_hash)
                       .values(expires_at=expires_ms))
