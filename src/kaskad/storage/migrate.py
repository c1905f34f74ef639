"""Schema migrations, applied with Alembic from code (no alembic.ini to carry around)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from kaskad.storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database to `revision` over the writer connection."""
    await _alembic(db, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(db: Database, revision: str) -> None:
    """Take the database back to `revision` (e.g. "-1" for the migration before)."""
    await _alembic(db, lambda cfg: command.downgrade(cfg, revision))


async def _alembic(db: Database, run: Callable[[Config], None]) -> None:
    """Run an Alembic command in one transaction.

    On SQLite, Alembic rebuilds a table to alter it (copy, DROP, rename). With foreign keys
    checked, dropping a table other rows refer to fails, and deferring the check does not
    help (SQLite counts the references the DROP broke and never recounts them against the
    rebuilt table). So foreign keys are off for the migration, as SQLite's own procedure for
    altering tables says, and `foreign_key_check` must come out clean before the COMMIT.
    """
    cfg = alembic_config(db.url)

    def _do(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        run(cfg)
        if db.is_sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")

    async with db.writer.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection  # aiosqlite's, or asyncpg's
        if db.is_sqlite:  # outside any transaction, or SQLite ignores it
            await raw.execute("PRAGMA foreign_keys = OFF")
        try:
            async with conn.begin():
                await conn.run_sync(_do)
        finally:
            if db.is_sqlite:
                await raw.execute("PRAGMA foreign_keys = ON")


def upgrade_sync(url: str) -> None:
    async def _main() -> None:
        db = Database(url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(_main())
