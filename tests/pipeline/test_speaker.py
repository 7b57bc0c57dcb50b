"""The numpy mel front end against librosa, and GE2E embeddings of real speakers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE, decode
from proxyai.pipeline.models import resolve_encoder
from proxyai.pipeline.scoring import read_rttm
from proxyai.pipeline.speaker import (
    FRAMES_PER_SECOND,
    N_MELS,
    Ge2eEncoder,
    mel_filters,
    mel_spectrogram,
    normalize_volume,
)

librosa = pytest.importorskip("librosa")


def librosa_mel(y: np.ndarray) -> np.ndarray:
    return np.asarray(librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=40).T)


def assert_close_to_librosa(y: np.ndarray) -> None:
    ours, ref = mel_spectrogram(y), librosa_mel(y)
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    # 1e-5 relative to each value, with a floor at 1e-5 of the peak for values near zero
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.max()))


@pytest.fixture(scope="module")
def dialogue(shared_audio: Path) -> tuple[np.ndarray, list]:
    return decode(shared_audio / "dialogue_2spk.wav").samples, read_rttm(str(shared_audio / "dialogue_2spk.rttm"))


@pytest.fixture(scope="module")
def encoder() -> Ge2eEncoder:
    return Ge2eEncoder(resolve_encoder("ge2e").path, "cpu")


# --- mel front end -----------------------------------------------------------------------------


def test_mel_filters_match_librosa() -> None:
    ours = mel_filters()
    assert ours.shape == (N_MELS, 201)
    np.testing.assert_allclose(ours, librosa.filters.mel(sr=SAMPLE_RATE, n_fft=400, n_mels=40), rtol=1e-5, atol=1e-7)


def test_mel_matches_librosa_on_speech(shared_audio: Path) -> None:
    y = decode(shared_audio / "jfk.flac").samples[: SAMPLE_RATE * 3]
    assert_close_to_librosa(y)


@pytest.mark.parametrize("length", [12345, 16000, 160 * 7 + 3])
def test_mel_matches_librosa_on_noise(length: int) -> None:
    y = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    assert_close_to_librosa(y)


def test_mel_matches_librosa_on_tone() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    assert_close_to_librosa((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))


def test_mel_frames_per_second() -> None:
    mel = mel_spectrogram(np.zeros(SAMPLE_RATE * 2, dtype=np.float32))
    assert mel.shape == (2 * FRAMES_PER_SECOND + 1, N_MELS)
    assert FRAMES_PER_SECOND == 100


def test_mel_tone_lands_in_its_band() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    low = mel_spectrogram((0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)).mean(axis=0)
    high = mel_spectrogram((0.3 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32)).mean(axis=0)
    assert int(np.argmax(low)) < int(np.argmax(high))


def test_mel_does_not_modify_input() -> None:
    y = (0.1 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)
    before = y.copy()
    mel_spectrogram(y)
    np.testing.assert_array_equal(y, before)


# --- volume ------------------------------------------------------------------------------------


def rms_dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


def test_quiet_audio_raised_to_target() -> None:
    quiet = (0.001 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    out = normalize_volume(quiet)
    assert rms_dbfs(out) == pytest.approx(-30.0, abs=0.01)
    assert out.dtype == np.float32


def test_loud_audio_not_lowered() -> None:
    loud = (0.3 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    np.testing.assert_array_equal(normalize_volume(loud), loud)


def test_silence_and_empty_untouched() -> None:
    silence = np.zeros(1000, dtype=np.float32)
    np.testing.assert_array_equal(normalize_volume(silence), silence)
    assert len(normalize_volume(np.zeros(0, dtype=np.float32))) == 0


# --- encoder -----------------------------------------------------------------------------------


def window(samples: np.ndarray, start_s: float, seconds: float = 1.5) -> np.ndarray:
    a = int(start_s * SAMPLE_RATE)
    return samples[a : a + int(seconds * SAMPLE_RATE)]


def speaker_windows(dialogue: tuple[np.ndarray, list]) -> tuple[np.ndarray, np.ndarray]:
    """Two 1.5 s windows from every reference turn (one near its start, one near its end)."""
    samples, turns = dialogue
    windows, speakers = [], []
    for t in turns:
        for start in (t.start + 0.1, t.end - 1.6):
            windows.append(window(samples, start))
            speakers.append(t.speaker)
    return np.stack(windows), np.array(speakers)


@pytest.fixture(scope="module")
def embedded(encoder: Ge2eEncoder, dialogue: tuple[np.ndarray, list]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dialogue's windows, their speakers and their embeddings (embedded once for the module)."""
    windows, speakers = speaker_windows(dialogue)
    return windows, speakers, encoder.embed(windows)


def test_bundled_weights_are_loaded(encoder: Ge2eEncoder) -> None:
    import torch

    checkpoint = torch.load(resolve_encoder("ge2e").path, map_location="cpu", weights_only=True)["model_state"]
    state = encoder.net.state_dict()
    assert state
    for name, value in state.items():
        assert name in checkpoint, name
        torch.testing.assert_close(value.cpu(), checkpoint[name])


def test_embeddings_are_unit_norm(embedded: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    windows, _, emb = embedded
    assert emb.shape == (len(windows), 256)
    assert emb.dtype == np.float32
    assert np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_same_speaker_more_similar(embedded: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, speakers, emb = embedded
    assert set(speakers.tolist()) == {"spk1", "spk2"}
    sim = emb @ emb.T
    same = (speakers[:, None] == speakers[None, :]) & ~np.eye(len(speakers), dtype=bool)
    different = speakers[:, None] != speakers[None, :]
    # windows of one speaker from different turns are more alike than any two windows of different speakers
    assert sim[same].min() > sim[different].max()
    # and every window's nearest other window is its own speaker's
    np.fill_diagonal(sim, -np.inf)
    assert (speakers[np.argmax(sim, axis=1)] == speakers).all()


def test_batches_do_not_change_embeddings(
    encoder: Ge2eEncoder, embedded: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    windows, _, emb = embedded
    batched = encoder.embed(windows[:7], batch_size=3)
    np.testing.assert_allclose(batched, emb[:7], atol=1e-5)


def test_embedding_depends_on_audio(embedded: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, _, emb = embedded
    assert not np.allclose(emb[0], emb[2])


def test_encoder_info(encoder: Ge2eEncoder) -> None:
    assert encoder.device == "cpu"
    assert encoder.path == resolve_encoder("ge2e").path
    assert (encoder.name, encoder.dim) == ("ge2e", 256)
    assert encoder.embed(np.zeros((0, SAMPLE_RATE), dtype=np.float32)).shape == (0, 256)


def test_checkpoint_missing_a_weight_is_refused(tmp_path: Path) -> None:
    import torch

    from proxyai.pipeline.encoders.base import EncoderError

    checkpoint = torch.load(resolve_encoder("ge2e").path, map_location="cpu", weights_only=True)
    del checkpoint["model_state"]["linear.bias"]
    torch.save(checkpoint, tmp_path / "broken.pt")
    with pytest.raises(EncoderError, match=r"1 missing \(linear.bias\)"):
        Ge2eEncoder(str(tmp_path / "broken.pt"))
