"""A prepared recording written to disk and read back is the same recording, speech map and chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline import prepared
from proxyai.pipeline.run import PipelineOptions, prepare


@pytest.fixture(scope="module")
def dialogue(shared_audio: Path) -> Path:
    return shared_audio / "dialogue_2spk.wav"


def test_saved_and_loaded_it_is_the_same(tmp_path: Path, dialogue: Path) -> None:
    prep = prepare(dialogue, PipelineOptions())
    assert prep.speech[0].regions and prep.chunks[0]
    folder = tmp_path / "prepared"
    assert prepared.load(folder) is None and prepared.read_speech_map(folder) is None
    prepared.save(prep, folder)
    back = prepared.load(folder)
    assert back is not None
    assert back.duration == prep.duration and back.split == prep.split
    assert [s.regions for s in back.speech] == [s.regions for s in prep.speech]
    assert back.chunks == prep.chunks
    assert len(back.tracks) == 1 and np.array_equal(back.tracks[0], prep.tracks[0])
    assert set(back.timings) == {"decode", "vad"}
    back.tracks[0][:10] = 0.0  # copy-on-write: the file is not changed
    again = prepared.load(folder)
    assert again is not None and np.array_equal(again.tracks[0], prep.tracks[0])
    assert sorted(p.name for p in folder.iterdir()) == ["audio.npy", "speech.json"]  # no temporary file
    json.loads((folder / "speech.json").read_text())

    prepared.drop_samples(folder)
    assert not prepared.has_samples(folder)
    assert prepared.load(folder) is None  # the samples are gone: not prepared for a part any more
    assert prepared.read_speech_map(folder) == prepared.speech_map(prep)  # what the merge needs stays


def test_both_channels_of_a_split_call_are_kept(tmp_path: Path, shared_audio: Path) -> None:
    import soundfile as sf

    samples, rate = sf.read(shared_audio / "dialogue_2spk.wav", dtype="float32")
    stereo = np.stack([samples, np.zeros_like(samples)], axis=1)
    half = len(samples) // 2
    stereo[half:, 0], stereo[half:, 1] = 0.0, samples[half:]
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, rate)
    prep = prepare(path, PipelineOptions(channels="split"))
    assert prep.split and len(prep.tracks) == 2
    prepared.save(prep, tmp_path / "p")
    back = prepared.load(tmp_path / "p")
    assert back is not None and back.split and len(back.tracks) == 2
    assert all(np.array_equal(a, b) for a, b in zip(back.tracks, prep.tracks, strict=True))
    assert back.chunks == prep.chunks


def test_a_stereo_recording_is_held_once_while_prepared(tmp_path: Path) -> None:
    """Fifteen minutes of stereo: the two channels are decoded into arrays of their own, scanned, then mixed
    into the first in place; the peak stays at the two channels' size plus the speech scan's fixed
    working memory (~20 MB: one-minute pieces), with no third, mixed copy; what is kept is one track."""
    import tracemalloc

    from audio_helpers import silent_flac

    path = silent_flac(tmp_path / "stereo.flac", 900.0, 16000, channels=2)
    tracemalloc.start()
    try:
        prep = prepare(path, PipelineOptions())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    channel = 900 * 16000 * 4
    assert not prep.split and len(prep.tracks) == 1 and prep.tracks[0].nbytes == channel
    over = peak - 2 * channel
    assert over < 40 * 2**20, f"peak {over / 2**20:.0f} MiB over the two channels"
    folder = tmp_path / "prepared"
    prepared.save(prep, folder)
    assert (folder / prepared.AUDIO).stat().st_size == pytest.approx(channel, abs=4096)
