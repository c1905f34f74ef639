"""An independent SIP peer for the telephony tests: PJSIP (pjsua2), driven over stdin/stdout.

Runs as its own process (pjsua2 owns threads and a sound-device layer that must not share
kaskad's event loop). Prints one JSON object per line:
  {"event": "ready", "udp": port, "tcp": port}
  {"event": "rx", "start": "ACK sip:... SIP/2.0", "branch": ..., "cseq": ..., "call_id": ...}
  {"event": "incoming", "from": remote URI, "call_id": ...}
  {"event": "ended", "call_id": ..., "status": last SIP status, "rx_packets": n,
   "jitter_ms": mean, "incoming": bool}
Reads commands, one JSON object per line: {"cmd": "call", "uri": ..., "from_user": ...}.
Incoming calls are handled by --mode: answer (180 then 200), ring (180 until cancelled), busy.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import sys

import pjsua2 as pj

MAIN = sys.modules[__name__]


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Logs(pj.LogWriter):
    """Turns pjsip's message log into rx events: what the peer really received on the wire."""

    def write(self, entry: pj.LogEntry) -> None:
        text = entry.msg
        if "RX " not in text or ("Request msg" not in text and "Response msg" not in text):
            return
        lines = text.replace("\r", "").split("\n")
        if len(lines) < 2:
            return
        message = "\n".join(lines[1:])
        branch = re.search(r"branch=([^;\s,]+)", message, re.IGNORECASE)
        cseq = re.search(r"^CSeq:\s*(.+)$", message, re.IGNORECASE | re.MULTILINE)
        call_id = re.search(r"^(?:Call-ID|i):\s*(.+)$", message, re.IGNORECASE | re.MULTILINE)
        emit(event="rx", start=lines[1].strip(), branch=branch.group(1) if branch else None,
             cseq=cseq.group(1).strip() if cseq else None,
             call_id=call_id.group(1).strip() if call_id else None)


class Call(pj.Call):
    def __init__(self, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID,
                 incoming: bool = False) -> None:
        super().__init__(account, call_id)
        self.incoming = incoming
        self.rx_packets = 0
        self.jitter_ms = 0.0
        self.sip_call_id = ""

    def poll_stats(self) -> None:
        try:
            stat = self.getStreamStat(0)
        except pj.Error:
            return
        self.rx_packets = max(self.rx_packets, stat.rtcp.rxStat.pkt)
        self.jitter_ms = stat.rtcp.rxStat.jitterUsec.mean / 1000.0

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        self.sip_call_id = info.callIdString
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            emit(event="ended", call_id=info.callIdString, status=info.lastStatusCode,
                 rx_packets=self.rx_packets, jitter_ms=self.jitter_ms, incoming=self.incoming)
            MAIN.CALLS.discard(self)


CALLS: set[Call] = set()


class Account(pj.Account):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = Call(self, prm.callId, incoming=True)
        CALLS.add(call)
        info = call.getInfo()
        emit(event="incoming", **{"from": info.remoteUri}, call_id=info.callIdString)
        op = pj.CallOpParam()
        op.statusCode = {"busy": 486}.get(self.mode, 180)
        call.answer(op)
        if self.mode == "answer":
            op = pj.CallOpParam()
            op.statusCode = 200
            call.answer(op)


def transport(ep: pj.Endpoint, kind: int) -> int:
    config = pj.TransportConfig()
    config.port = 0
    config.boundAddress = "127.0.0.1"
    tid = ep.transportCreate(kind, config)
    return int(ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])


def command(account: Account, line: str) -> None:
    request = json.loads(line)
    if request.get("cmd") == "call":
        call = Call(account)
        CALLS.add(call)
        call.makeCall(request["uri"], pj.CallOpParam(True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="answer", choices=["answer", "ring", "busy"])
    parser.add_argument("--user", default="79161234567")
    args = parser.parse_args()
    ep = pj.Endpoint()
    ep.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    logs = Logs()
    config.logConfig.writer = logs
    config.logConfig.level = 5
    config.logConfig.consoleLevel = 5  # the writer gets what the console would
    config.logConfig.msgLogging = 1
    ep.libInit(config)
    udp = transport(ep, pj.PJSIP_TRANSPORT_UDP)
    tcp = transport(ep, pj.PJSIP_TRANSPORT_TCP)
    ep.audDevManager().setNullDev()
    ep.libStart()
    account = Account(args.mode)
    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:{args.user}@127.0.0.1"
    account.create(account_config)
    emit(event="ready", udp=udp, tcp=tcp)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buffer = b""
    while True:
        ep.libHandleEvents(10)
        for call in list(CALLS):
            call.poll_stats()
        if select.select([stdin], [], [], 0)[0]:
            chunk = os.read(stdin, 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    command(account, line.decode())
    ep.libDestroy()


if __name__ == "__main__":
    main()
