"""Diarization error rate, word error rate and word-to-speaker attribution."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxyai.pipeline.diarize import Turn
from proxyai.pipeline.scoring import der, normalize_words, read_rttm, speaker_mapping, wer, word_attribution

REF = [Turn(0.0, 10.0, "A"), Turn(10.0, 20.0, "B"), Turn(20.0, 30.0, "A")]


# --- DER ---------------------------------------------------------------------------------------


def test_identical_turns() -> None:
    result = der(REF, REF)
    assert result.der == 0.0
    assert result.missed == result.false_alarm == result.confusion == 0.0
    # ±0.25 s around the inner edges (10, 20 s), the inside half of the collar at 0 and 30 s
    assert result.scored == pytest.approx(30.0 - 0.5 * 2 - 0.25 * 2, abs=0.02)


def test_swapped_labels() -> None:
    hyp = [Turn(t.start, t.end, {"A": "spk2", "B": "spk1"}[t.speaker]) for t in REF]
    assert der(REF, hyp).der == pytest.approx(0.0)
    assert der(REF, hyp, collar=0.0).der == pytest.approx(0.0)


def test_all_on_one_speaker() -> None:
    ref = [Turn(0.0, 10.0, "A"), Turn(10.0, 20.0, "B")]
    result = der(ref, [Turn(0.0, 20.0, "X")])
    assert result.confusion == pytest.approx(0.5, abs=0.01)
    assert result.missed == pytest.approx(0.0)
    assert result.false_alarm == pytest.approx(0.0)
    assert result.der == pytest.approx(0.5, abs=0.01)


def test_collar_excludes_boundary_errors() -> None:
    ref = [Turn(0.0, 10.0, "A"), Turn(10.0, 20.0, "B")]
    hyp = [Turn(0.0, 10.2, "A"), Turn(10.2, 20.0, "B")]
    assert der(ref, hyp, collar=0.25).der == pytest.approx(0.0)
    no_collar = der(ref, hyp, collar=0.0)
    assert no_collar.confusion == pytest.approx(0.2 / 20, abs=0.002)
    assert no_collar.scored == pytest.approx(20.0, abs=0.02)


def test_error_beyond_collar_counts() -> None:
    ref = [Turn(0.0, 10.0, "A"), Turn(10.0, 20.0, "B")]
    hyp = [Turn(0.0, 11.0, "A"), Turn(11.0, 20.0, "B")]
    result = der(ref, hyp, collar=0.25)
    # 0.75 s of B (10.25–11.0) called A, out of 19 s scored
    assert result.confusion == pytest.approx(0.75 / 19, abs=0.002)


def test_missed_speech() -> None:
    result = der(REF, [], collar=0.0)
    assert result.missed == pytest.approx(1.0)
    assert result.der == pytest.approx(1.0)
    half = der(REF, [Turn(0.0, 10.0, "A"), Turn(10.0, 20.0, "B")], collar=0.0)
    assert half.missed == pytest.approx(1 / 3, abs=0.002)
    assert half.confusion == pytest.approx(0.0)


def test_false_alarm() -> None:
    ref = [Turn(0.0, 10.0, "A")]
    hyp = [Turn(0.0, 10.0, "X"), Turn(15.0, 20.0, "X")]
    result = der(ref, hyp, collar=0.0)
    assert result.false_alarm == pytest.approx(0.5, abs=0.002)
    assert result.missed == 0.0
    assert result.confusion == 0.0


def test_overlapped_speech_counted() -> None:
    ref = [Turn(0.0, 10.0, "A"), Turn(5.0, 10.0, "B")]
    result = der(ref, [Turn(0.0, 10.0, "X")], collar=0.0)
    assert result.missed == pytest.approx(5 / 15, abs=0.002)
    assert result.scored == pytest.approx(15.0, abs=0.02)


def test_empty_reference_and_hypothesis() -> None:
    assert der([], []).der == 0.0


def test_der_is_symmetric_in_label_names() -> None:
    hyp = [Turn(0.0, 12.0, "h1"), Turn(12.0, 20.0, "h2"), Turn(20.0, 30.0, "h1")]
    renamed = [Turn(t.start, t.end, {"h1": "zz", "h2": "aa"}[t.speaker]) for t in hyp]
    assert der(REF, hyp).der == pytest.approx(der(REF, renamed).der)
    assert der(REF, hyp).der > 0


# --- mapping and RTTM --------------------------------------------------------------------------


def test_speaker_mapping() -> None:
    hyp = [Turn(0.0, 9.0, "x"), Turn(9.0, 20.0, "y"), Turn(20.0, 30.0, "x"), Turn(30.0, 31.0, "z")]
    assert speaker_mapping(REF, hyp) == {"x": "A", "y": "B"}


def test_speaker_mapping_one_to_one() -> None:
    # both hypothesis speakers overlap A most; only one can take it
    ref = [Turn(0.0, 10.0, "A"), Turn(10.0, 12.0, "B")]
    hyp = [Turn(0.0, 6.0, "x"), Turn(6.0, 12.0, "y")]
    mapping = speaker_mapping(ref, hyp)
    assert mapping == {"x": "A", "y": "B"}
    assert speaker_mapping([], hyp) == {}


def test_read_rttm(tmp_path: Path) -> None:
    path = tmp_path / "ref.rttm"
    path.write_text(
        "SPEAKER call 1 0.604 2.866 <NA> <NA> spk1 <NA> <NA>\n"
        "\n"
        "SPKR-INFO call 1 <NA> <NA> <NA> unknown spk1 <NA>\n"
        "SPEAKER call 1 3.870 2.010 <NA> <NA> spk2 <NA> <NA>\n"
    )
    turns = read_rttm(str(path))
    assert [(t.start, round(t.end, 3), t.speaker) for t in turns] == [(0.604, 3.47, "spk1"), (3.87, 5.88, "spk2")]


def test_reference_rttm_scores_itself(shared_audio: Path) -> None:
    ref = read_rttm(str(shared_audio / "dialogue_2spk.rttm"))
    assert len(ref) == 10
    assert {t.speaker for t in ref} == {"spk1", "spk2"}
    assert der(ref, ref).der == 0.0
    one = [Turn(0.0, max(t.end for t in ref), "x")]
    assert der(ref, one).confusion > 0.3


# --- WER ---------------------------------------------------------------------------------------


def test_wer_normalises_case_and_punctuation() -> None:
    assert wer("Hello, World!", "hello world") == 0.0
    assert wer("Don't stop — it's fine.", "dont stop its fine") == 0.0


def test_wer_one_substitution() -> None:
    assert wer("the cat sat down", "the dog sat down") == pytest.approx(0.25)


def test_wer_insertions_and_deletions() -> None:
    assert wer("a b", "a b c") == pytest.approx(0.5)
    assert wer("a b c d", "a d") == pytest.approx(0.5)
    assert wer("a b c d", "") == pytest.approx(1.0)
    assert wer("a b", "x y z w") == pytest.approx(2.0)


def test_wer_empty_reference() -> None:
    assert wer("", "") == 0.0
    assert wer("", "something") == 1.0
    assert wer("...", "") == 0.0


def test_wer_cyrillic() -> None:
    assert wer("Ёлка, зелёная!", "елка зеленая") == 0.0
    assert wer("Привет мир", "привет миру") == pytest.approx(0.5)


def test_wer_spells_out_numbers_in_the_language() -> None:
    pytest.importorskip("num2words", reason="num2words is not installed")
    assert wer("I have 2 cats", "I have two cats", language="en") == 0.0
    assert wer("I have 21 cats", "i have twenty-one cats", language="en") == 0.0
    assert wer("У меня 21 кот", "у меня двадцать один кот", language="ru") == 0.0
    assert normalize_words("21 cats", "en") == ["twenty", "one", "cats"]


def test_numbers_left_alone_without_a_language() -> None:
    assert normalize_words("21 cats") == ["21", "cats"]
    assert normalize_words("21 cats", "xx-unknown") == ["21", "cats"]
    assert wer("I have 2 cats", "I have two cats") == pytest.approx(0.25)


def test_normalize_words() -> None:
    assert normalize_words("Hello,  WORLD! snake_case") == ["hello", "world", "snake", "case"]
    assert normalize_words("ｆｕｌｌ width") == ["full", "width"]


# --- word attribution --------------------------------------------------------------------------


REF_WORDS = [("A", "hello there"), ("B", "general kenobi")]


def test_word_attribution_perfect() -> None:
    hyp = [("x", "Hello there."), ("y", "General Kenobi!")]
    assert word_attribution(REF_WORDS, hyp, {"x": "A", "y": "B"}) == 1.0


def test_word_attribution_wrong_speaker() -> None:
    hyp = [("x", "hello there general"), ("y", "kenobi")]
    assert word_attribution(REF_WORDS, hyp, {"x": "A", "y": "B"}) == pytest.approx(0.75)
    assert word_attribution(REF_WORDS, hyp, {"x": "B", "y": "A"}) == pytest.approx(0.25)


def test_word_attribution_dropped_word_is_wrong() -> None:
    hyp = [("x", "hello there"), ("y", "general")]
    assert word_attribution(REF_WORDS, hyp, {"x": "A", "y": "B"}) == pytest.approx(0.75)


def test_word_attribution_unmapped_speaker_is_wrong() -> None:
    hyp = [("x", "hello there"), ("q", "general kenobi")]
    assert word_attribution(REF_WORDS, hyp, {"x": "A"}) == pytest.approx(0.5)


def test_word_attribution_empty_reference() -> None:
    assert word_attribution([], [("x", "anything")], {}) == 1.0
