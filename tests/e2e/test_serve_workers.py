"""`kaskad serve` with KASKAD_WORKERS=2: two processes on one port, each a node of its own,
share the database; every request is answered, finished and billed once, on both backends."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
from sqlalchemy import func, select

from kaskad.services.admin import Admin
from kaskad.storage.db import Database
from kaskad.storage.schema import verifications


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_two_workers_share_the_port_and_the_database(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    admin = Admin(db, test_balance_kop=100_000, default_directions=["RU"])
    await admin.ensure_demo_tariffs()
    key = (await admin.create_account("acme")).api_key
    port = _free_port()
    env = dict(os.environ, KASKAD_DATABASE_URL=db_url, KASKAD_WORKERS="2",
               KASKAD_LOG_LEVEL="warning", KASKAD_TELEGRAM_MODE="inprocess",
               KASKAD_SMS_MODE="inprocess", KASKAD_TELEPHONY_MODE="inprocess",
               KASKAD_SANDBOX__REPORT_DELAY_S="0.02", KASKAD_DATA_DIR=str(tmp_path))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kaskad", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            async def healthy() -> None:
                while True:
                    try:
                        if (await c.get("/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(healthy(), 60)
            numbers = [f"7900123{i:03d}{'04'[i % 2]}" for i in range(60)]
            answers = await asyncio.gather(*(c.post("/api/send/", headers={
                "Authorization": key}, json={"number": n, "resending": "sms"})
                for n in numbers))
        assert all(a.json()["result"] == "ok" for a in answers)

        async def finished() -> int:
            async with db.read() as conn:
                return int((await conn.execute(select(func.count()).select_from(verifications)
                                               .where(verifications.c.finished_at.is_not(None))
                                               )).scalar_one())

        async def all_final() -> None:
            while await finished() < len(numbers):  # noqa: ASYNC110 (another process writes)
                await asyncio.sleep(0.05)

        await asyncio.wait_for(all_final(), 30)
        account = await admin.account("acme")
        # 30 by Telegram (1.50), 30 by SMS after "no Telegram" (3.50): each charged once.
        assert (account.balance, account.held) == (100_000 - 30 * 150 - 30 * 350, 0)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
        await db.dispose()
