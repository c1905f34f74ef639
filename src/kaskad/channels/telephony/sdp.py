"""The SDP we offer (PCMU/8000 only) and the one fact we need from the answer: where to send."""

from __future__ import annotations

import time

from aiosipua.sdp import parse_sdp


def offer(host: str, rtp_port: int, session_id: int | None = None) -> bytes:
    """An audio offer of PCMU/8000 in 20 ms packets (plus telephone-event, which phones expect)."""
    sid = session_id if session_id is not None else int(time.time())
    lines = [
        "v=0",
        f"o=kaskad {sid} {sid} IN IP4 {host}",
        "s=kaskad",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


def remote_audio(body: bytes) -> tuple[str, int] | None:
    """The (address, port) of the answer's first audio stream that accepted PCMU; None if not."""
    try:
        sdp = parse_sdp(body.decode("utf-8", errors="replace"))
    except (ValueError, IndexError):
        return None
    for media in sdp.media:
        if media.media != "audio" or media.port == 0 or "0" not in media.formats:
            continue
        connection = media.connection or sdp.connection
        if connection is None:
            return None
        return connection.address, media.port
    return None
