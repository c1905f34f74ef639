"""Benchmark the SMPP connector: sustained submit_sm/s and receipts/s against the SMSC
simulator, one bind and four binds, window 10 per bind.

    python bench/smpp.py [--messages 5000] [--binds 1,4] [--window 10]

The simulator (`kaskad simulate smsc`, smpp34's Rust server behind a small Python relay) runs
in its own process; this process runs our connector (aiosmpplib + our window) and offers
`binds × window` concurrent one-part messages. It measures the transport only: no HTTP and no
database (the ssms push_msg path, which stores and bills every message, is not built yet).
For reference, the issue quotes Kannel 1.4.5 at about 2,500 msg/s with one bind and window 10.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time

from kaskad.channels.sms.connector import Part, SmppConnector
from kaskad.config import ConnectorSettings
from kaskad.domain.smpp import SubmitVerdict
from kaskad.domain.sms import segment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(binds: int, window: int, messages: int, port: int) -> dict[str, float]:
    receipts = 0
    all_receipts = asyncio.Event()

    def on_receipt(_name: str, _receipt: object) -> None:
        nonlocal receipts
        receipts += 1
        if receipts >= messages:
            all_receipts.set()

    c = SmppConnector(ConnectorSettings(name=f"bench{binds}", host="127.0.0.1", port=port,
                                        system_id="kaskad", password="secret", binds=binds,
                                        window=window), on_receipt=on_receipt)
    await c.start()
    if not await c.wait_bound(10):
        raise SystemExit("could not bind to the simulator")
    while not all(b.bound for b in c.binds):  # noqa: ASYNC110 (aiosmpplib has no event)
        await asyncio.sleep(0.01)
    seg = segment("Your code: 123456")
    payload = seg.payloads()[0]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while not queue.empty():
            i = queue.get_nowait()
            result = await c.submit(Part("Kaskad", f"7900{i:06d}0", seg.encoding, payload))
            if result.verdict is not SubmitVerdict.ACCEPTED:
                failed += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(binds * window)))
    submitted = time.perf_counter() - started
    try:
        await asyncio.wait_for(all_receipts.wait(), 60)
    except TimeoutError:
        pass
    received = time.perf_counter() - started
    cpu_pct = 100 * (time.process_time() - cpu) / received
    await c.stop()
    return {"binds": binds, "window": window, "messages": messages, "failed": failed,
            "submit_per_s": round(messages / submitted), "receipts": receipts,
            "receipts_per_s": round(receipts / received), "client_cpu_pct": round(cpu_pct)}


async def main_async(args: argparse.Namespace) -> None:
    port = free_port()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kaskad", "simulate", "smsc", "--port", str(port),
        "--receipt-delay", "0.01", stdout=asyncio.subprocess.PIPE)
    assert sim.stdout is not None
    await asyncio.wait_for(sim.stdout.readline(), 30)  # "listening on ..."
    try:
        print("| binds | window | messages | submit_sm/s | receipts/s | failed | client CPU |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for binds in (int(b) for b in args.binds.split(",")):
            r = await run(binds, args.window, args.messages, port)
            print(f"| {r['binds']} | {r['window']} | {r['messages']} | {r['submit_per_s']} | "
                  f"{r['receipts_per_s']} | {r['failed']} | {r['client_cpu_pct']}% |",
                  flush=True)
    finally:
        sim.terminate()
        await sim.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--binds", default="1,4")
    p.add_argument("--window", type=int, default=10)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
