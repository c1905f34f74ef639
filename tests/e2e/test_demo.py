"""The README's first command, as a newcomer runs it: `kaskad demo` starts, prints a key and a
curl line; the code is sent, its state and callback arrive, and only delivered codes cost money."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from kaskad.domain.callbacks import verify


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _read_until(stream: asyncio.StreamReader, pattern: str, limit_s: float) -> str:
    seen: list[str] = []

    async def loop() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("demo exited early:\n" + "".join(seen))
            seen.append(line)
            if re.search(pattern, line):
                return "".join(seen)

    return await asyncio.wait_for(loop(), limit_s)


@contextlib.asynccontextmanager
async def running_demo(backend: str, db_url: str, tmp_path: Path,
                       **env_extra: str) -> AsyncIterator[tuple[int, str, dict[str, str]]]:
    """`kaskad demo` on a free port and this test's database: (port, banner, environment);
    stopped at the end."""
    port = _free_port()
    env = dict(os.environ, KASKAD_LOG_LEVEL="warning", KASKAD_SANDBOX__REPORT_DELAY_S="0.05",
               **env_extra)
    if backend == "postgres":
        env["KASKAD_DATABASE_URL"] = db_url
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kaskad", "demo", "--port", str(port),
        "--data-dir", str(tmp_path / "data"), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert demo.stdout is not None
        banner = await _read_until(demo.stdout, r"^Press Ctrl\+C", 60)
        yield port, banner, env
    finally:
        demo.terminate()
        await asyncio.wait_for(demo.wait(), 30)


async def test_demo_sends_codes_calls_back_and_bills_delivered_only(
        backend: str, db_url: str, tmp_path: Path) -> None:
    async with running_demo(backend, db_url, tmp_path,
                            KASKAD_TELEGRAM_TIMEOUT_S="1") as (port, banner, env):
        key = re.search(r"^API key: (\S+)$", banner, re.M)
        assert key, banner
        curl = re.search(r"^curl -s (\S+) .*-H 'Authorization: (\S+)' \\\n\s+-d '(.+)'$",
                         banner, re.M)
        assert curl, banner
        url, curl_key, body = curl.groups()
        assert curl_key == key.group(1)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/health")).status_code == 200
            # The printed curl line: a number without Telegram, falling back to SMS.
            sent = (await client.post(url, content=body, headers={
                "Content-Type": "application/json", "Authorization": curl_key})).json()
            assert sent["result"] == "ok" and sent["resend"] == "sms", sent
            # And one that no channel delivers.
            lost = (await client.post("/api/send/", json={
                "number": "79001234565", "resending": "sms",
                "callback_url": f"{base}/demo/callbacks"},
                headers={"Authorization": curl_key})).json()
            # One that Telegram delivers: the real client, over HTTP, to the built-in
            # simulator; its signed report comes back to the webhook (not by polling).
            tg = (await client.post("/api/send/", json={
                "number": "79001234560", "callback_url": f"{base}/demo/callbacks"},
                headers={"Authorization": curl_key})).json()
            assert tg["result"] == "ok" and tg["resend"] == "", tg
            callbacks = await _callbacks(client, {sent["request_id"], lost["request_id"],
                                                  tg["request_id"]})
            metrics = (await client.get("/metrics")).text
            assert re.search(r'kaskad_telegram_events\{event="reports"\} [1-9]', metrics), \
                metrics
            assert re.search(r"^kaskad_engine_backlog \d", metrics, re.M), metrics
            assert re.search(r"^kaskad_write_coalescing [01]", metrics, re.M), metrics
            health = (await client.get("/health")).json()
            assert health["degraded"] == [], health
            state = (await client.get("/api/status/", params={"request_id": sent["request_id"]},
                                      headers={"Authorization": curl_key})).json()
        assert state["state"] == "sms" and state["price"] == "3.50"
        by_id = {c["body"]["request_id"]: c for c in callbacks}
        assert by_id[sent["request_id"]]["body"]["state"] == "sms"
        assert by_id[tg["request_id"]]["body"]["state"] == "delivered"
        assert by_id[lost["request_id"]]["body"] == {
            **by_id[lost["request_id"]]["body"], "state": "not_delivered", "price": "0.00"}
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kaskad", "accounts", "show", "demo",
            env=dict(env, KASKAD_DATA_DIR=str(tmp_path / "data")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(cli.communicate(), 60)
        shown = out.decode()
        assert cli.returncode == 0, shown
        assert "balance 45.00" in shown and "held 0.00" in shown, shown
        secret = re.search(r"callback secret: (\w+)", shown)
        assert secret
        for c in callbacks:
            assert c["event_id"]
            assert verify(secret.group(1), int(c["timestamp"]), c["raw"].encode(),
                          c["signature"])


async def _callbacks(client: httpx.AsyncClient, wanted: set[str]) -> list[dict[str, Any]]:
    """The demo's inbox is another process: poll it, bounded."""

    async def loop() -> list[dict[str, Any]]:
        while True:
            got = [c for c in (await client.get("/demo/callbacks")).json()
                   if isinstance(c.get("body"), dict) and "request_id" in c["body"]]
            if wanted <= {c["body"]["request_id"] for c in got}:
                return list(got)
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(loop(), 30)


async def test_demo_ssms_api_and_wait_call(backend: str, db_url: str, tmp_path: Path) -> None:
    """The banner's ssms lines: push_msg over the built-in SMSC, its report and status
    callback; wait_call, the subscriber's call through the sandbox, and the GET to the hook."""
    async with running_demo(backend, db_url, tmp_path) as (port, banner, _env):
        push = re.search(r"^curl -s '(\S+method=push_msg\S+)'$", banner, re.M)
        wait = re.search(r"^curl -s '(\S+method=wait_call\S+)'$", banner, re.M)
        assert push and wait, banner
        async with httpx.AsyncClient(timeout=10) as client:
            sent = (await client.get(push.group(1))).json()["response"]
            assert sent["msg"]["err_code"] == "0", sent
            report_url = push.group(1).replace("method=push_msg", "method=get_msg_report")
            report_url = report_url.split("&phone=")[0] + f"&id={sent['data']['id']}"

            async def delivered() -> dict[str, object]:
                while True:
                    data = (await client.get(report_url)).json()["response"]["data"]
                    if data["last_update"]:
                        return dict(data)
                    await asyncio.sleep(0.05)

            report = await asyncio.wait_for(delivered(), 20)
            assert report["state"] == 1 and report["credits"] == "3.50"
            # Seed 002's `resending: voice`, as the banner shows it: a call over SIP.
            voice = re.search(r"^curl -s (\S+) -H 'Authorization: (\S+)' \\\n\s+-d '(.+voice.+)'$",
                              banner, re.M)
            assert voice, banner
            sent_voice = (await client.post(voice.group(1), content=voice.group(3), headers={
                "Authorization": voice.group(2)})).json()
            assert sent_voice["resend"] == "voice", sent_voice
            status_url = f"http://127.0.0.1:{port}/api/status/"

            async def voiced() -> dict[str, object]:
                while True:
                    state = (await client.get(status_url, params={
                        "request_id": sent_voice["request_id"]},
                        headers={"Authorization": voice.group(2)})).json()
                    if state["state"] in ("voice", "not_delivered"):
                        return dict(state)
                    await asyncio.sleep(0.1)

            assert (await asyncio.wait_for(voiced(), 30))["state"] == "voice"
            waiting = (await client.get(wait.group(1))).json()["response"]["data"]
            called = (await client.post(f"http://127.0.0.1:{port}/sandbox/calls", params={
                "from": "79001234565", "to": waiting["call_to_number"]})).json()
            assert called == {"disposition": "matched"}

            async def inbox() -> list[dict[str, object]]:
                while True:
                    got = (await client.get(f"http://127.0.0.1:{port}/demo/callbacks")).json()
                    hooks = [c for c in got if c.get("method") == "GET"]
                    statuses = [c for c in got if isinstance(c.get("body"), dict)
                                and c["body"].get("id") == sent["data"]["id"]]
                    if hooks and statuses:
                        return [*hooks, *statuses]
                    await asyncio.sleep(0.05)

            hook, status = await asyncio.wait_for(inbox(), 20)
            assert hook["query"]["id_call"] == waiting["id_call"]  # type: ignore[index]
            assert status["body"]["state"] == 1  # type: ignore[index]
