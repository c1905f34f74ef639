"""Shared fixtures. Every storage and engine test runs on SQLite and on PostgreSQL.

PostgreSQL is required: a run that cannot reach it fails instead of skipping. Set
KASKAD_TEST_PG_URL to point elsewhere (default: the local server, database `test`); each test
run creates its own database and drops it at the end, so parallel runs do not collide. For a
quick local loop you may set KASKAD_TEST_BACKENDS=sqlite explicitly; CI never does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from kaskad.api.app import create_app
from kaskad.bootstrap import ChannelFactory, Gateway
from kaskad.config import Settings
from kaskad.services.admin import Admin
from kaskad.storage.db import Database
from kaskad.storage.migrate import upgrade
from kaskad.storage.schema import metadata

PG_URL = os.environ.get("KASKAD_TEST_PG_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("KASKAD_TEST_BACKENDS", "sqlite,postgres")
            .split(",") if b.strip()]


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_database() -> Any:
    """A fresh, migrated PostgreSQL database for this test run."""
    if "postgres" not in BACKENDS:
        yield None
        return
    name = f"kaskad_test_{uuid.uuid4().hex[:10]}"

    async def _create() -> None:
        try:
            conn = await asyncpg.connect(_pg_dsn(PG_URL), timeout=10)
        except Exception as exc:
            pytest.fail(f"PostgreSQL is required for the test suite and is not reachable at "
                        f"{PG_URL}: {exc!r}. Start it (scripts/test does) or set "
                        f"KASKAD_TEST_PG_URL.", pytrace=False)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        db = Database(_with_db(PG_URL, name))
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    async def _drop() -> None:
        conn = await asyncpg.connect(_pg_dsn(PG_URL), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(_create())
    yield _with_db(PG_URL, name)
    asyncio.run(_drop())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is enough)."""
    path = tmp_path_factory.mktemp("template") / "kaskad.db"

    async def _create() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(_create())
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(backend: str, tmp_path: Path, sqlite_template: Path,
                 pg_database: str | None) -> str:
    """The URL of an empty, migrated database on the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "kaskad.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    assert pg_database is not None
    db = Database(pg_database)
    try:
        async with db.write() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()
    return pg_database


def make_settings(db_url: str, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        database_url=db_url, node_id=f"test-{uuid.uuid4().hex[:6]}", send_wait_s=2.0,
        auth_cache_ttl_s=0.0, poll_interval_s=0.05, lease_s=5.0, telegram_timeout_s=1.0,
        sms_timeout_s=2.0, voice_timeout_s=2.0, retry_backoff_s=0.05,
        callback_backoff_s=0.05, callback_backoff_cap_s=0.2, telegram_mode="inprocess",
        sms_mode="inprocess", telephony_mode="inprocess",
    )
    base["sandbox"] = {"report_delay_s": 0.02, "slow_delay_s": 0.2}
    base.update(overrides)
    return Settings(**base)


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def make_gateway(db_url: str) -> AsyncIterator[GatewayFactory]:
    """Build and start gateways on this test's database; all are stopped at the end."""
    made: list[Gateway] = []

    async def _make(*, channels: ChannelFactory | None = None, start: bool = True,
                    **overrides: Any) -> Gateway:
        gw = Gateway(make_settings(db_url, **overrides), channels=channels)
        if start:
            await gw.start()
        made.append(gw)
        return gw

    yield _make
    for gw in made:
        if gw.started:
            await gw.stop()
        else:
            await gw.db.dispose()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def admin(gateway: Gateway) -> Admin:
    a = Admin(gateway.db, test_balance_kop=gateway.settings.test_balance_kop,
              default_directions=gateway.settings.default_direction_list)
    await a.ensure_demo_tariffs()
    return a


@pytest.fixture
async def api_key(admin: Admin) -> str:
    return (await admin.create_account("acme", email="dev@acme.example")).api_key


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gateway, demo_inbox=True, manage_gateway=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kaskad.test") as c:
        yield c


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key
