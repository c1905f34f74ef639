"""Mobile-originated messages: stored through the group-commit writer as they arrive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from kaskad.storage.batch import BatchConn, BatchOp
from kaskad.storage.db import Database
from kaskad.storage.rawsql import RawSql
from kaskad.storage.schema import mo_messages


@dataclass(frozen=True, slots=True)
class NewMo:
    connector: str
    source: str
    destination: str
    text: str
    data_coding: int
    received_at: int


class StoreMo(BatchOp[NewMo, None]):
    name = "store_mo"
    order = 80

    def __init__(self, db: Database) -> None:
        self.sql = RawSql(db)

    async def run(self, conn: BatchConn, items: Sequence[NewMo]) -> list[Exception | None]:
        await self.sql.insert_rows(
            conn, "mo_messages", ("connector", "source", "destination", "text", "data_coding",
                                  "received_at"),
            [(i.connector, i.source[:21], i.destination[:21], i.text, i.data_coding,
              i.received_at) for i in items])
        return [None] * len(items)


async def recent_mo(conn: AsyncConnection, limit: int = 50) -> list[NewMo]:
    rows = await conn.execute(select(mo_messages).order_by(mo_messages.c.id.desc()).limit(limit))
    return [NewMo(r.connector, r.source, r.destination, r.text, r.data_coding, r.received_at)
            for r in rows]
