"""Voice-code prompts assembled from the recorded words shipped in prompts/<lang>/.

The recordings are raw G.711 mu-law at 8 kHz (scripts/make_prompts makes them), so a prompt is
concatenated bytes: "Ваш код: 1 2 3 4" with short pauses, said twice.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

SAMPLE_RATE = 8000
ULAW_SILENCE = 0xFF
LANGUAGES = ("ru", "en")
DIGIT_PAUSE = 0.25  # seconds between digits, so "1 2" is not heard as one word
INTRO_PAUSE = 0.35
REPEAT_PAUSE = 0.8
LEAD_IN = 0.2  # the first packets after answer are often clipped by the far end


def silence(seconds: float) -> bytes:
    return bytes([ULAW_SILENCE]) * int(seconds * SAMPLE_RATE)


@lru_cache(maxsize=32)
def word(lang: str, name: str) -> bytes:
    """One recorded word ('intro' or a digit); cached, the files are read once."""
    if lang not in LANGUAGES:
        raise ValueError(f"no prompts for language {lang!r}")
    folder = resources.files("kaskad.channels.telephony") / "prompts" / lang
    return (folder / f"{name}.ulaw").read_bytes()


def assemble(code: str, lang: str = "ru", *, repeats: int = 2) -> bytes:
    """The whole prompt for `code` as mu-law bytes; unknown languages fall back to Russian."""
    if not code.isdigit():
        raise ValueError("a voice code is digits only")
    lang = lang if lang in LANGUAGES else "ru"
    once = word(lang, "intro") + silence(INTRO_PAUSE) + silence(DIGIT_PAUSE).join(
        word(lang, digit) for digit in code)
    return silence(LEAD_IN) + silence(REPEAT_PAUSE).join([once] * repeats)


def duration(audio: bytes) -> float:
    return len(audio) / SAMPLE_RATE
