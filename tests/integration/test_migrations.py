"""The migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from kaskad.storage.db import Database
from kaskad.storage.migrate import downgrade, upgrade
from kaskad.storage.schema import metadata


async def test_migrated_database_matches_the_declared_schema(db_url: str) -> None:
    db = Database(db_url)

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    try:
        async with db.writer.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


async def test_report_and_attempt_lookups_use_an_index(backend: str, db_url: str) -> None:
    """Every report and every accepted attempt looks these up: a scan grows with history."""
    if backend != "sqlite":
        return  # PostgreSQL's planner picks by statistics; the indexes are checked above
    db = Database(db_url)
    try:
        async with db.read() as conn:
            for sql in ("SELECT request_id FROM attempts WHERE provider_ref IN "
                        "(SELECT value FROM json_each('[1]'))",
                        "SELECT id FROM reports WHERE disposition = 'unmatched' AND "
                        "provider_ref IN (SELECT value FROM json_each('[1]'))"):
                plan = " ".join(str(r[-1]) for r in await conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + sql))
                assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    finally:
        await db.dispose()


async def test_batches_never_deadlock_with_an_in_process_writer(backend: str,
                                                               db_url: str) -> None:
    """On SQLite a batch runs synchronously on a connection of its own; while SQLAlchemy's
    writer holds the write lock in this same process, the batch must wait without blocking
    the event loop (else that writer could never commit)."""
    import asyncio

    from sqlalchemy import text

    db = Database(db_url)
    try:
        async with db.write() as held:
            await held.execute(text("UPDATE tariffs SET price = price WHERE id = -1"))
            waiting = asyncio.create_task(_batch_select(db))
            await asyncio.sleep(0.05)
            assert not waiting.done() or not db.is_sqlite  # SQLite: the lock is ours
        assert await asyncio.wait_for(waiting, 5) == 1
    finally:
        await db.dispose()


async def _batch_select(db: Database) -> int:
    from kaskad.storage.rawsql import RawSql

    async with db.batch() as conn:
        rows = await RawSql(db).fetch(conn, "SELECT 1")
        return int(rows[0][0])


async def test_the_last_migration_goes_down_and_up_again_keeping_the_rows(db_url: str) -> None:
    """A release can be rolled back and redone on a database in use: on SQLite, Alembic
    rebuilds tables that other rows refer to (verifications, attempts), which fails with
    foreign keys checked unless the migration switches them off (storage.migrate)."""
    db = Database(db_url)

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    rows = {
        "accounts": "(id, name, callback_secret, created_at) VALUES (1, 'a', 's', 1)",
        "verifications": "(request_id, account_id, number, direction, code, resending, policy, "
                         "prices, step_index, retries, state, state_reason, resend, hold, "
                         "charged, created_at, updated_at, run_step, lease_token, kind, parts) "
                         "VALUES ('r1', 1, '79001234567', 'RU', '1234', 'sms', 'telegram', "
                         "'{}', 0, 0, 'pending', '', '', 0, 0, 1, 1, false, 0, 'code', 1)",
        "attempts": "(request_id, step_index, channel, outcome, started_at, finished_at) "
                    "VALUES ('r1', 0, 'telegram', 'accepted', 1, 1)",
        "ledger": "(account_id, kind, amount, created_at) VALUES (1, 'hold', 150, 1)",
        "outbox": "(event_id, account_id, url, body, created_at) VALUES ('e', 1, 'u', '{}', 1)",
    }
    try:
        async with db.write() as conn:
            for table, values in rows.items():
                await conn.execute(text(f"INSERT INTO {table} {values}"))
        async with db.read() as conn:
            head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        await downgrade(db, "-1")
        async with db.read() as conn:
            older = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert older != head
        await upgrade(db)
        async with db.writer.connect() as conn:
            assert await conn.run_sync(diff) == []
        async with db.read() as conn:
            for table in rows:
                count = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
                assert count == 1, table
    finally:
        await db.dispose()
