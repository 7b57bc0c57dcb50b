"""The synthetic conversation set (``bench/conversations.py``): reproducible, references that match the audio,
halves that share no voice, telephone audio that is band-limited."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import wavfile

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_AUDIO = (REPO_ROOT / ".." / "shared" / "audio").resolve()
sys.path.insert(0, str(REPO_ROOT / "bench"))

import conversations  # noqa: E402

COUNT, SECONDS = 4, 30.0


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".wav", ".rttm", ".json")
    }


def read_turns(path: Path) -> list[tuple[float, float, str]]:
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        turns.append((float(parts[3]), float(parts[3]) + float(parts[4]), parts[7]))
    return turns


def read_audio(path: Path) -> np.ndarray[Any, np.dtype[np.float64]]:
    rate, data = wavfile.read(path)
    assert rate == 16000 and data.dtype == np.int16 and data.ndim == 1
    return np.asarray(data, dtype=np.float64) / 32768.0


@pytest.fixture(scope="module")
def devset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    missing = conversations.missing_requirements(SHARED_AUDIO)
    if missing:
        pytest.skip(f"cannot synthesise the set here: {conversations.requirements_message(missing)}")
    out = tmp_path_factory.mktemp("devset")
    index = conversations.generate(out, seed=0, count=COUNT, max_duration=SECONDS, shared=SHARED_AUDIO)
    return out, index


def test_the_plan_has_48_balanced_conversations() -> None:
    plans = conversations.plan_set(seed=0)
    assert len(plans) == 48
    for half in conversations.HALVES:
        mine = [p for p in plans if p.half == half]
        assert len(mine) == 24
        assert sum(p.kind.startswith("monologue") for p in mine) == 5
        assert {len(p.speakers) for p in mine} == {1, 2, 3, 4, 5}
        assert sum(p.band == "phone" for p in mine) == 8
        assert {s.voice.gender for p in mine for s in p.speakers} == {"f", "m"}
        assert all(len({s.voice.base for s in p.speakers}) == len(p.speakers) for p in mine)


def test_voices_do_not_cross_halves(devset: tuple[Path, list[dict[str, Any]]]) -> None:
    halves = conversations.split_voices(conversations.catalog(), seed=0)
    for plan in conversations.plan_set(seed=0):
        assert {halves[s.voice.base] for s in plan.speakers} == {plan.half}
    _, index = devset
    assert {c["half"] for c in index} == set(conversations.HALVES)
    used = {half: {v for c in index if c["half"] == half for v in c["voices"]} for half in conversations.HALVES}
    assert not used["tune"] & used["check"]
    assert all(halves[v] == c["half"] for c in index for v in c["voices"])


def test_same_seed_same_bytes(devset: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    out, index = devset
    first = digests(out)
    assert len(first) == 2 * COUNT + 1
    # a fresh cache renders everything again; the first folder's warm cache only mixes
    again = conversations.generate(tmp_path, seed=0, count=COUNT, max_duration=SECONDS, shared=SHARED_AUDIO)
    assert digests(tmp_path) == first
    assert again == index
    conversations.generate(out, seed=0, count=COUNT, max_duration=SECONDS, shared=SHARED_AUDIO)
    assert digests(out) == first
    assert conversations.load_index(out) == index


def test_rttm_turns_lie_in_the_audio_and_on_speech(devset: tuple[Path, list[dict[str, Any]]]) -> None:
    out, index = devset
    for conversation in index:
        name = conversation["name"]
        audio = read_audio(out / f"{name}.wav")
        duration = len(audio) / 16000
        assert conversation["duration"] == pytest.approx(duration, abs=1e-3)
        assert 10 <= duration <= SECONDS + 1
        turns = read_turns(out / f"{name}.rttm")
        assert turns and all(0 <= s < e <= duration for s, e, _ in turns)
        assert {spk for *_, spk in turns} == set(conversation["labels"])
        db = conversations.frame_db(audio)
        times = np.arange(len(db)) * conversations.HOP + conversations.FRAME / 2
        inside = np.zeros(len(db), dtype=bool)
        near = np.zeros(len(db), dtype=bool)
        for s, e, _ in turns:
            inside |= (times >= s) & (times <= e)
            near |= (times >= s - 0.1) & (times <= e + 0.1)
        floor = np.percentile(db[~near], 95)
        assert np.median(db[inside]) > floor + 15, name
        for s, e, _ in turns:
            assert db[(times >= s) & (times <= e)].max() > floor + 20, (name, s)
        for u in conversation["utterances"]:
            assert any(s < u["end"] and e > u["start"] for s, e, spk in turns if spk == u["speaker"])
            assert u["text"] and u["language"]


def test_telephone_audio_has_nothing_above_3600_hz(devset: tuple[Path, list[dict[str, Any]]]) -> None:
    out, index = devset
    bands = {c["band"] for c in index}
    assert bands == {"wide", "phone"}
    for conversation in index:
        audio = read_audio(out / f"{conversation['name']}.wav")
        power = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
        share = power[freqs > 3600].sum() / power.sum()
        if conversation["band"] == "phone":
            assert share < 1e-5, conversation["name"]
        else:
            assert share > 1e-4, conversation["name"]
