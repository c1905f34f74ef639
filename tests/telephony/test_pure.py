"""The pure parts of telephony: numbers, caller ids, RTP headers, digest, prompts, settings."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaskad.channels.telephony import prompts
from kaskad.channels.telephony.calls import CallEnd, CallResult, end_for_status
from kaskad.channels.telephony.digest import answer
from kaskad.channels.telephony.numbers import (
    caller_of,
    flash_caller_id,
    normalise_number,
    uri_user,
)
from kaskad.channels.telephony.registration import granted_expiry, refresh_after
from kaskad.channels.telephony.rtp import (
    SAMPLES_PER_PACKET,
    RtpHeader,
    RtpStats,
    pack_rtp,
    packetise,
    stream_headers,
    unpack_rtp,
)
from kaskad.channels.telephony.sdp import offer, remote_audio
from kaskad.channels.telephony.settings import FlashRange, HostPort, TrunkSettings
from kaskad.domain.channels import Outcome


@pytest.mark.parametrize(("raw", "digits"), [
    ("+79161234567", "79161234567"),
    ("89161234567", "79161234567"),
    ("9161234567", "79161234567"),
    ("+7(916)123-45-67", "79161234567"),
    ("0079161234567", "79161234567"),
    ("442071234567", "442071234567"),
    ("anonymous", ""),
    ("123", ""),
])
def test_normalise_number(raw: str, digits: str) -> None:
    assert normalise_number(raw) == digits


def test_uri_user_takes_the_first_sip_or_tel_uri() -> None:
    assert uri_user('"Ivan" <sip:+79161234567@trunk;user=phone>;tag=1') == "+79161234567"
    assert uri_user("<tel:+7-916-123-45-67>") == "+7-916-123-45-67"
    assert uri_user("<sip:%2B79161234567@x>") == "+79161234567"
    assert uri_user("garbage") == ""


def test_caller_prefers_p_asserted_identity_then_from() -> None:
    assert caller_of("<sip:89031112233@net>", "<sip:79161234567@x>") == "79031112233"
    assert caller_of(None, "<sip:79161234567@x>;tag=a") == "79161234567"
    assert caller_of("<sip:anonymous@net>", "<sip:79161234567@x>") == "79161234567"
    assert caller_of(None, "<sip:anonymous@anonymous.invalid>") == ""


@given(code=st.text("0123456789", min_size=4, max_size=8), seed=st.integers())
def test_flash_caller_id_ends_with_the_code_inside_the_range(code: str, seed: int) -> None:
    flash_range = FlashRange(prefix="7495123", digits=8)
    caller = flash_caller_id(flash_range, code, random.Random(seed))
    assert caller.startswith("7495123") and caller.endswith(code)
    assert len(caller) == len("7495123") + 8 and caller.isdigit()


def test_flash_caller_id_refuses_codes_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        flash_caller_id(FlashRange(prefix="7495", digits=4), "12345")
    with pytest.raises(ValueError, match="digits only"):
        flash_caller_id(FlashRange(prefix="7495", digits=4), "12a4")


@given(pt=st.integers(0, 127), seq=st.integers(0, 0xFFFF), ts=st.integers(0, 0xFFFFFFFF),
       ssrc=st.integers(0, 0xFFFFFFFF), marker=st.booleans(), payload=st.binary(max_size=200))
def test_rtp_header_round_trips(pt: int, seq: int, ts: int, ssrc: int, marker: bool,
                                payload: bytes) -> None:
    header = RtpHeader(pt, seq, ts, ssrc, marker)
    packet = pack_rtp(header, payload)
    assert packet[0] == 0x80 and len(packet) == 12 + len(payload)
    assert unpack_rtp(packet) == (header, payload)


@given(count=st.integers(1, 400), seq=st.integers(0, 0xFFFF), ts=st.integers(0, 0xFFFFFFFF))
def test_stream_headers_wrap_and_mark_only_the_first(count: int, seq: int, ts: int) -> None:
    headers = stream_headers(count, 42, seq, ts)
    assert [h.marker for h in headers] == [True] + [False] * (count - 1)
    for before, after in itertools.pairwise(headers):
        assert after.sequence == (before.sequence + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + SAMPLES_PER_PACKET) & 0xFFFFFFFF


@given(audio=st.binary(max_size=2000))
def test_packetise_makes_whole_20ms_payloads(audio: bytes) -> None:
    chunks = packetise(audio)
    assert all(len(c) == 160 for c in chunks)
    assert b"".join(chunks)[:len(audio)] == audio
    assert len(chunks) == -(-len(audio) // 160)


def test_unpack_rejects_what_is_not_rtp() -> None:
    assert unpack_rtp(b"\x00" * 20) is None
    assert unpack_rtp(b"\x80\x00") is None


def test_receiver_jitter_is_zero_for_perfect_pacing() -> None:
    stats = RtpStats()
    for n, header in enumerate(stream_headers(50, 7, 0, 1000)):
        stats.on_packet(pack_rtp(header, b"\xff" * 160), 10.0 + n * 0.02)
    assert stats.packets == 50 and stats.markers == 1
    assert stats.jitter_ms == pytest.approx(0, abs=1e-6)
    assert stats.duration == pytest.approx(0.98)


def test_digest_answer_matches_rfc_2617_computation() -> None:
    opaque = "5ccc069c403ebaf9f0171e9517f40e41"
    challenge = 'Digest realm="testrealm@host.com", qop="auth", ' \
                f'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="{opaque}"'
    reply = answer(401, challenge, method="GET", uri="/dir/index.html", username="Mufasa",
                   password="Circle Of Life", cnonce="0a4f113b")
    assert reply is not None and reply.header == "Authorization"
    assert 'response="6629fae49393a05397450978507c4ef1"' in reply.value  # RFC 2617 §3.5
    assert "nc=00000001" in reply.value and f'opaque="{opaque}"' in reply.value


def test_digest_answer_for_a_proxy_and_without_qop() -> None:
    reply = answer(407, 'Digest realm="r", nonce="n"', method="INVITE", uri="sip:1@r",
                   username="u", password="p")
    assert reply is not None and reply.header == "Proxy-Authorization"
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    expected = md5(f"{md5('u:r:p')}:n:{md5('INVITE:sip:1@r')}")
    assert f'response="{expected}"' in reply.value
    assert answer(401, 'Basic realm="r"', method="X", uri="y", username="u", password="p") is None


def test_prompt_is_intro_and_digits_twice() -> None:
    once = prompts.word("ru", "intro") + b"".join(prompts.word("ru", d) for d in "12")
    audio = prompts.assemble("12", "ru")
    assert audio.count(prompts.word("ru", "intro")) == 2
    assert len(audio) > 2 * len(once)
    assert prompts.assemble("12", "xx") == audio  # unknown language: Russian
    assert prompts.assemble("12", "en") != audio
    assert 2 < prompts.duration(prompts.assemble("1234", "ru")) < 12


def test_every_prompt_word_is_shipped() -> None:
    for lang in prompts.LANGUAGES:
        for name in ["intro", *"0123456789"]:
            assert 800 < len(prompts.word(lang, name)) < 16000  # 0.1 s .. 2 s, silence trimmed


def test_sdp_offer_is_pcmu_and_the_answer_gives_the_media_address() -> None:
    body = offer("127.0.0.1", 40000)
    assert b"m=audio 40000 RTP/AVP 0 101" in body and b"a=rtpmap:0 PCMU/8000" in body
    assert remote_audio(body) == ("127.0.0.1", 40000)
    assert remote_audio(body.replace(b"RTP/AVP 0 101", b"RTP/AVP 8")) is None
    assert remote_audio(b"not sdp") is None


@pytest.mark.parametrize(("status", "end"), [
    (486, CallEnd.BUSY), (600, CallEnd.BUSY), (603, CallEnd.REJECTED), (403, CallEnd.REJECTED),
    (404, CallEnd.NOT_FOUND), (480, CallEnd.NO_ANSWER), (487, CallEnd.NO_ANSWER),
    (503, CallEnd.NETWORK), (407, CallEnd.NETWORK),
])
def test_final_status_ends(status: int, end: CallEnd) -> None:
    assert end_for_status(status) is end


def test_outcomes() -> None:
    def result(delivered: bool, end: CallEnd) -> Outcome:
        return CallResult(delivered, end, None, "c").outcome
    assert result(True, CallEnd.ANSWERED) is Outcome.DELIVERED
    assert result(False, CallEnd.BUSY) is Outcome.NOT_DELIVERED
    assert result(False, CallEnd.NETWORK) is Outcome.REJECTED_TEMPORARY
    assert result(False, CallEnd.NOT_FOUND) is Outcome.REJECTED_PERMANENT


def test_registration_refresh_comes_before_expiry() -> None:
    assert refresh_after(3600) == 2880
    assert refresh_after(60) == 30
    assert refresh_after(2) == 1
    assert granted_expiry("<sip:a@b>;expires=120", "300", 600) == 120
    assert granted_expiry("<sip:a@b>", "300", 600) == 300
    assert granted_expiry(None, None, 600) == 600


def test_trunk_settings() -> None:
    assert HostPort.parse("sip.example.net:5080").as_tuple() == ("sip.example.net", 5080)
    assert HostPort.parse("10.0.0.1").port == 5060
    assert HostPort.parse("[::1]:5070").as_tuple() == ("::1", 5070)
    trunk = TrunkSettings.model_validate({"proxy": {"host": "p"}, "register": True,
                                          "caller_id": "+{number}", "dids": ["79990001122"]})
    assert trunk.register_enabled and trunk.sip_domain == "p"
    assert trunk.format_caller("7495") == "+7495"
    with pytest.raises(ValueError):
        TrunkSettings.model_validate({"proxy": {"host": "p"}, "dids": ["+7999"]})
    with pytest.raises(ValueError):
        TrunkSettings.model_validate({"proxy": {"host": "p"}, "caller_id": "7495"})
