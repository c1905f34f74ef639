"""Reading messages (push_msg) back: their ssms state, as get_msg_report and the status
callback tell it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.domain.channels import ChannelName
from kaskad.domain.ssms import MessageFacts, state_code
from kaskad.storage.schema import attempts, reports, verifications
from kaskad.storage.verifications import Verification, to_verification


def facts_of(v: Verification, last_stat: str = "") -> MessageFacts:
    waiting_sms = not v.final and not v.run_step and v.channel is ChannelName.SMS
    return MessageFacts(final=v.final, delivered=v.final and v.delivered_by is not None,
                        state_reason=v.state_reason, sms_accepted=waiting_sms,
                        last_stat=last_stat)


def message_state(v: Verification, last_stat: str = "") -> int:
    return state_code(facts_of(v, last_stat))


async def get_message(conn: AsyncConnection, account_id: int,
                      msg_id: int) -> tuple[Verification, str] | None:
    """The message and its last receipt's stat word ("" when none came)."""
    row = (await conn.execute(select(verifications).where(
        verifications.c.msg_id == msg_id, verifications.c.account_id == account_id))).first()
    if row is None:
        return None
    v = to_verification(row)
    stat = (await conn.execute(  # through attempts: reports are indexed by provider_ref
        select(reports.c.detail)
        .join(attempts, attempts.c.provider_ref == reports.c.provider_ref)
        .where(attempts.c.request_id == v.request_id,
               reports.c.channel == ChannelName.SMS.value)
        .order_by(reports.c.id.desc()).limit(1))).scalar()
    return v, (stat or "")
