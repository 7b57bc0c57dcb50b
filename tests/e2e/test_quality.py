"""The pipeline on the shared recordings, default settings: speaker counts, DER, word attribution, WER.

Thresholds are the issue's; the figures themselves are printed by ``bench/quality.py``.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE, decode
from proxyai.pipeline.diarize import Turn
from proxyai.pipeline.run import PipelineOptions, diarize, prepare, run
from proxyai.pipeline.scoring import der, read_rttm, speaker_mapping, wer, word_attribution

pytestmark = pytest.mark.slow

JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."

SPEAKERS = {
    "jfk.flac": 1,
    "multilingual.mp3": 1,
    "stereo_diarization.wav": 2,
    "dialogue_2spk.wav": 2,
    "meeting_4spk.wav": 4,
    "ru_support_call.wav": 2,
    "phone_2spk.wav": 2,
}
MAX_DER = {"dialogue_2spk": 0.08, "meeting_4spk": 0.08, "ru_support_call": 0.08, "phone_2spk": 0.10}
MIN_WORDS = {"dialogue_2spk": 0.95, "ru_support_call": 0.95, "phone_2spk": 0.90}
MAX_WER = {"dialogue_2spk": 0.10, "ru_support_call": 0.15}


@pytest.fixture(scope="module")
def results(shared_audio: Path) -> dict[str, dict[str, Any]]:
    return {name: run(shared_audio / name, PipelineOptions()) for name in SPEAKERS}


def _turns(result: dict[str, Any]) -> list[Turn]:
    return [Turn(t["start"], t["end"], t["speaker"]) for t in result["diarization"]]


def _text(result: dict[str, Any]) -> str:
    return " ".join(s["text"] for s in result["segments"])


BILINGUAL = pytest.mark.xfail(
    strict=True,
    reason="a known failure: CAM++ (and ECAPA) place the English and German halves of this monologue as far "
    "apart as two people (corrected similarity about 0.4), below the floor that still separates two women on a "
    "phone line (about 0.5), so nothing keeps it one voice; see the README's accuracy section",
)


@pytest.mark.parametrize("name", [pytest.param(n, marks=BILINGUAL) if n == "multilingual.mp3" else n for n in SPEAKERS])
def test_speaker_count(results: dict[str, dict[str, Any]], name: str) -> None:
    result = results[name]
    assert len(result["speakers"]) == SPEAKERS[name]
    used = {s["speaker"] for s in result["segments"]}
    assert used <= {s["id"] for s in result["speakers"]}


@pytest.mark.parametrize("stem", list(MAX_DER))
def test_der(results: dict[str, dict[str, Any]], shared_audio: Path, stem: str) -> None:
    name = f"{stem}.wav"
    score = der(read_rttm(str(shared_audio / f"{stem}.rttm")), _turns(results[name]), collar=0.25)
    assert score.der <= MAX_DER[stem], score


@pytest.mark.parametrize("stem", list(MIN_WORDS))
def test_words_attributed_to_the_right_speaker(
    results: dict[str, dict[str, Any]], shared_audio: Path, stem: str
) -> None:
    result = results[f"{stem}.wav"]
    reference = json.loads((shared_audio / f"{stem}.json").read_text())["segments"]
    mapping = speaker_mapping(read_rttm(str(shared_audio / f"{stem}.rttm")), _turns(result))
    share = word_attribution(
        [(s["speaker"], s["text"]) for s in reference],
        [(s["speaker"], s["text"]) for s in result["segments"]],
        mapping,
        result["language"],
    )
    assert share >= MIN_WORDS[stem]


@pytest.mark.parametrize("stem", list(MAX_WER))
def test_wer(results: dict[str, dict[str, Any]], shared_audio: Path, stem: str) -> None:
    result = results[f"{stem}.wav"]
    reference = " ".join(s["text"] for s in json.loads((shared_audio / f"{stem}.json").read_text())["segments"])
    assert wer(reference, _text(result), result["language"]) <= MAX_WER[stem]


def test_jfk_wer(results: dict[str, dict[str, Any]]) -> None:
    assert wer(JFK_TEXT, _text(results["jfk.flac"]), "en") <= 0.10


def test_languages_detected(results: dict[str, dict[str, Any]]) -> None:
    assert results["ru_support_call.wav"]["language"] == "ru"
    assert results["jfk.flac"]["language"] == "en"
    assert results["dialogue_2spk.wav"]["language"] == "en"


def test_stereo_call_is_diarized_by_channel(results: dict[str, dict[str, Any]]) -> None:
    result = results["stereo_diarization.wav"]
    assert result["model"]["diarization"] == "channels"
    by_speaker = {s["speaker"]: s["text"].lower() for s in result["segments"]}
    assert len(by_speaker) == 2
    texts = list(by_speaker.values())
    assert any("wizard" in t for t in texts) and any("horizon" in t for t in texts)
    assert not any("wizard" in t and "horizon" in t for t in texts)
    # the two sides talk at the same time: the overlap is kept in the turns
    turns = _turns(result)
    a = [t for t in turns if t.speaker == "SPEAKER_00"]
    b = [t for t in turns if t.speaker == "SPEAKER_01"]
    assert any(min(x.end, y.end) > max(x.start, y.start) for x in a for y in b)


def test_result_shape(results: dict[str, dict[str, Any]]) -> None:
    result = results["dialogue_2spk.wav"]
    assert set(result) >= {"duration", "language", "language_probability", "speakers", "segments", "diarization"}
    assert result["model"] == {"asr": "base", "diarization": "embedded"}
    assert set(result["timings"]) >= {"decode", "vad", "asr", "diarization", "total"}
    assert result["speakers"][0] == {"id": "SPEAKER_00", "label": "SPEAKER_00"}
    # speakers are numbered in order of first appearance in the transcript
    first = [s["speaker"] for s in result["segments"]]
    assert first[0] == "SPEAKER_00"
    assert first[first.index("SPEAKER_01") - 1] == "SPEAKER_00"
    starts = [s["start"] for s in result["segments"]]
    assert starts == sorted(starts)
    for seg in result["segments"]:
        assert seg["start"] <= seg["end"]
        for w in seg["words"]:
            assert seg["start"] <= w["start"] <= w["end"] <= seg["end"]


def test_a_recording_played_three_times_has_the_speakers_it_has_once(shared_audio: Path, tmp_path: Path) -> None:
    """The same audio heard again (a looped prompt, a file made of copies) is not a reason to split a
    voice: the held-out test holds every repeat out with what it repeats."""
    samples = decode(shared_audio / "meeting_4spk.wav").samples
    gap = np.zeros(SAMPLE_RATE, dtype=np.float32)
    period = (len(samples) + len(gap)) / SAMPLE_RATE
    path = tmp_path / "looped.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        for _ in range(3):
            w.writeframes((np.clip(np.concatenate([samples, gap]), -1, 1) * 32767).astype("<i2").tobytes())
    once = read_rttm(shared_audio / "meeting_4spk.rttm")
    reference = [Turn(t.start + k * period, t.end + k * period, t.speaker) for k in range(3) for t in once]
    options = PipelineOptions()
    turns = diarize(prepare(path, options), options)
    assert len({t.speaker for t in turns}) == 4
    assert der(reference, turns).der <= MAX_DER["meeting_4spk"]
