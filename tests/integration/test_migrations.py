"""The migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from kaskad.storage.db import Database
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


async def test_the_last_migration_goes_down_and_up_again(db_url: str) -> None:
    """A release can be rolled back: the newest migration's downgrade works on both backends."""
    from alembic import command

    from kaskad.storage.migrate import alembic_config, upgrade

    db = Database(db_url)

    def down(connection: Connection) -> None:
        cfg = alembic_config(db.url)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "-1")

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    try:
        async with db.writer.begin() as conn:
            await conn.run_sync(down)
        async with db.writer.connect() as conn:
            assert await conn.run_sync(diff) != []  # the older schema really differs
        await upgrade(db)
        async with db.writer.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()
