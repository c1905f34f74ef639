"""Benchmark the SIP layer over loopback, each side in its own process.

    python bench/sip.py [--invites 5000] [--window 50] [--calls 50]

(a) Incoming calls: our endpoint (SipStack + IncomingCalls, a hook that returns at once) takes
    INVITEs over UDP from a raw load generator in a child process that keeps `--window` calls in
    flight, ACKs every 486 and times INVITE -> 486. Prints calls/s and latency percentiles.
(b) Outgoing voice calls: `--calls` concurrent voice-code calls from our SipCaller to the sandbox
    phones in a child process, which measure the RTP inter-arrival intervals of every call.
    Prints how far the intervals stray from 20 ms (p50/p99/max) and how many packets arrived.
Hook-to-customer-GET latency (the issue's end-to-end figure) needs the engine; not measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import structlog

from kaskad.channels.telephony import prompts
from kaskad.channels.telephony.calls import SipCaller
from kaskad.channels.telephony.incoming import IncomingCalls
from kaskad.channels.telephony.rtp import packetise
from kaskad.channels.telephony.settings import HostPort, TrunkSettings
from kaskad.channels.telephony.stack import SipStack
from kaskad.simulators.phones import PhoneNetwork

DID = "79990001122"


def quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- (a) incoming INVITEs -----------------------------------------------------------------------

def _invite(port: int, n: int) -> bytes:
    return ("\r\n".join([
        f"INVITE sip:{DID}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbench{n}",
        "Max-Forwards: 70", f"From: <sip:7916{n:07d}@127.0.0.1>;tag=b{n}",
        f"To: <sip:{DID}@127.0.0.1>", f"Call-ID: bench-{n}", "CSeq: 1 INVITE",
        "Content-Length: 0", "", ""])).encode()


def _ack(port: int, n: int, response: str) -> bytes:
    to = next(line for line in response.split("\r\n") if line.lower().startswith("to:"))
    return ("\r\n".join([
        f"ACK sip:{DID}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbench{n}",
        "Max-Forwards: 70", f"From: <sip:7916{n:07d}@127.0.0.1>;tag=b{n}", to,
        f"Call-ID: bench-{n}", "CSeq: 1 ACK", "Content-Length: 0", "", ""])).encode()


class _Generator(asyncio.DatagramProtocol):
    def __init__(self, total: int, window: int, target: tuple[str, int]) -> None:
        self.total, self.window, self.target = total, window, target
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []
        self.next = 0
        self.done = asyncio.Event()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def send_more(self) -> None:
        port = self.transport.get_extra_info("sockname")[1]
        while self.next < self.total and len(self.sent_at) < self.window:
            self.sent_at[self.next] = time.perf_counter()
            self.transport.sendto(_invite(port, self.next), self.target)
            self.next += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        text = data.decode(errors="replace")
        if not text.startswith("SIP/2.0 486"):
            return
        call_id = next(line for line in text.split("\r\n") if line.lower().startswith("call-id"))
        n = int(call_id.rsplit("-", 1)[1])
        started = self.sent_at.pop(n, None)
        if started is None:
            return  # a retransmitted 486
        self.latencies.append(time.perf_counter() - started)
        self.transport.sendto(_ack(self.transport.get_extra_info("sockname")[1], n, text), addr)
        if len(self.latencies) == self.total:
            self.done.set()
        self.send_more()


async def _generate(total: int, window: int, target: tuple[str, int]) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    _, generator = await loop.create_datagram_endpoint(
        lambda: _Generator(total, window, target), local_addr=("127.0.0.1", 0))
    started = time.perf_counter()
    generator.send_more()
    await asyncio.wait_for(generator.done.wait(), timeout=120)
    elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in generator.latencies]
    return {"calls": total, "seconds": elapsed, "per_second": total / elapsed,
            "p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99), "max_ms": max(ms)}


def _generator_process(total: int, window: int, target: tuple[str, int],
                       out: Connection) -> None:
    out.send(asyncio.run(_generate(total, window, target)))


async def bench_incoming(total: int, window: int) -> dict[str, float]:
    hooked = 0

    async def on_incoming(caller: str, callee: str, call_id: str) -> bool:
        nonlocal hooked
        hooked += 1
        return True

    stack = SipStack(transports=("udp",), handler=IncomingCalls([DID], on_incoming))
    await stack.start()
    try:
        receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
        process = multiprocessing.get_context("spawn").Process(
            target=_generator_process, args=(total, window, stack.address, send))
        process.start()
        result: dict[str, float] = await asyncio.get_running_loop().run_in_executor(
            None, receive.recv)
        process.join()
        result["hook_calls"] = hooked
        return result
    finally:
        await stack.stop()


# --- (b) concurrent outbound voice calls --------------------------------------------------------

def _phones_process(commands: Connection) -> None:
    async def main() -> None:
        quiet()
        phones = PhoneNetwork(answer_delay=0.0)
        await phones.start()
        commands.send(phones.address)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, commands.recv)  # "report"
        intervals = [i for c in phones.calls if c.rtp for i in c.rtp.stats.intervals]
        commands.send({"calls": len(phones.calls), "intervals": intervals,
                       "packets": [c.packets for c in phones.calls],
                       "jitter_ms": [c.rtp.stats.jitter_ms for c in phones.calls if c.rtp]})
        await phones.stop()
    asyncio.run(main())


async def bench_outbound(calls: int) -> dict[str, float]:
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_phones_process,
                                                           args=(theirs,))
    process.start()
    loop = asyncio.get_running_loop()
    address = await loop.run_in_executor(None, ours.recv)
    stack = SipStack(transports=("udp",))
    await stack.start()
    trunk = TrunkSettings(proxy=HostPort(host=address[0], port=address[1]),
                          calls_per_second=1000, voice_caller="74950000000")
    caller = SipCaller(stack, trunk)
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(caller.voice_call(f"7900{n:07d}0", "1234")
                                         for n in range(calls)))
        elapsed = time.perf_counter() - started
    finally:
        await stack.stop()
    ours.send("report")
    report = await loop.run_in_executor(None, ours.recv)
    process.join()
    deviation = [abs(i - 0.02) * 1000 for i in report["intervals"]]
    expected = len(packetise(prompts.assemble("1234", "ru")))
    return {"calls": calls, "delivered": sum(r.delivered for r in results),
            "seconds": elapsed, "packets_expected_per_call": expected,
            "packets_min": min(report["packets"]), "packets_max": max(report["packets"]),
            "deviation_p50_ms": percentile(deviation, 0.5),
            "deviation_p99_ms": percentile(deviation, 0.99),
            "deviation_max_ms": max(deviation),
            "jitter_mean_ms": statistics.mean(report["jitter_ms"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invites", type=int, default=5000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    quiet()
    incoming = asyncio.run(bench_incoming(args.invites, args.window))
    print(f"(a) incoming INVITE -> 486: {incoming['calls']} calls, window {args.window}: "
          f"{incoming['per_second']:.0f} calls/s; latency p50 {incoming['p50_ms']:.2f} ms, "
          f"p99 {incoming['p99_ms']:.2f} ms, max {incoming['max_ms']:.2f} ms; "
          f"hook called {incoming['hook_calls']} times")
    outbound = asyncio.run(bench_outbound(args.calls))
    print(f"(b) {outbound['calls']} concurrent voice calls ({outbound['delivered']} delivered, "
          f"{outbound['seconds']:.1f} s): RTP interval deviation from 20 ms p50 "
          f"{outbound['deviation_p50_ms']:.2f} ms, p99 {outbound['deviation_p99_ms']:.2f} ms, "
          f"max {outbound['deviation_max_ms']:.2f} ms; packets per call "
          f"{outbound['packets_min']}..{outbound['packets_max']} of "
          f"{outbound['packets_expected_per_call']}; mean RFC 3550 jitter "
          f"{outbound['jitter_mean_ms']:.2f} ms")


if __name__ == "__main__":
    main()
