"""The code detector against a corpus of real-looking messages (seed 000).

Precision matters more than recall: a text wrongly taken for a code reaches the subscriber as a
bare number through Telegram instead of its words by SMS. Missed codes only cost more (SMS).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kaskad.domain.code_detect import detect_code

CORPUS = Path(__file__).resolve().parent.parent / "data" / "code_corpus.tsv"


def load_corpus() -> list[tuple[str | None, str]]:
    cases = []
    for line in CORPUS.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        expected, _, text = line.partition("\t")
        cases.append((None if expected == "-" else expected, text))
    return cases


def scores(cases: list[tuple[str | None, str]]) -> tuple[float, float, list[str]]:
    true_pos = false_pos = false_neg = 0
    wrong = []
    for expected, text in cases:
        got = detect_code(text)
        if got is not None and got == expected:
            true_pos += 1
        elif got is not None:
            false_pos += 1
            wrong.append(f"took {got!r} from: {text}")
        if expected is not None and got != expected:
            false_neg += 1
            wrong.append(f"missed {expected!r} in: {text}")
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 1.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 1.0
    return precision, recall, wrong


def test_corpus_is_big_enough_and_balanced() -> None:
    cases = load_corpus()
    assert len(cases) >= 100
    codes = sum(1 for e, _ in cases if e is not None)
    assert 30 <= codes <= len(cases) - 30


def test_precision_and_recall_on_the_corpus() -> None:
    precision, recall, wrong = scores(load_corpus())
    print(f"code detection: precision {precision:.3f}, recall {recall:.3f}")
    assert precision == 1.0, wrong
    assert recall >= 0.95, wrong


def test_the_seed_examples() -> None:
    assert detect_code("Ваш код: 123456") == "123456"
    assert detect_code("Вы записаны на семинар в 14-00 на 12.05.2025, для отмены перезвоните "
                       "на 8-800-123-45-67") is None


def test_the_length_range_is_the_accounts() -> None:
    assert detect_code("Ваш код: 123456", 4, 5) is None
    assert detect_code("Ваш код: 1234", 5, 8) is None
    assert detect_code("Ваш код: 12345678", 4, 8) == "12345678"


@given(st.text(max_size=300))
def test_never_crashes_and_only_returns_digits_of_the_text(text: str) -> None:
    got = detect_code(text)
    assert got is None or (got.isdigit() and 4 <= len(got) <= 8
                           and got in text.replace("-", "").replace(" ", ""))


def test_grouped_codes_and_ambiguity() -> None:
    assert detect_code("Ваш код: 123 456") == "123456"
    assert detect_code("Код 1234, звоните 800 555") is None  # two candidates: unsure
    assert detect_code("Код подтверждения отправлен. Звоните 8 800 555 35 35") is None
