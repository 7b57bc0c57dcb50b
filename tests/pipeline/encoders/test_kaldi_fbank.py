"""The numpy Kaldi fbank against kaldi-native-fbank (Kaldi's own algorithm, as a C++ library)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from proxyai.pipeline.audio import decode
from proxyai.pipeline.encoders.kaldi_fbank import N_MELS, fbank, filters, mean_normalised, num_frames

knf = pytest.importorskip("kaldi_native_fbank")


def reference(wav: np.ndarray) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.frame_opts.samp_freq = 16000
    opts.mel_opts.num_bins = N_MELS
    extractor = knf.OnlineFbank(opts)
    extractor.accept_waveform(16000, wav.tolist())
    extractor.input_finished()
    return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


def test_matches_kaldi_on_speech(shared_audio: Path) -> None:
    wav = decode(shared_audio / "dialogue_2spk.wav").samples[: 16000 * 3]
    ours, ref = fbank(wav), reference(wav)
    assert ours.shape == ref.shape == (num_frames(len(wav)), N_MELS)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-3)


@pytest.mark.parametrize("length", [400, 401, 559, 560, 16000])
def test_matches_kaldi_on_noise(length: int) -> None:
    wav = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    np.testing.assert_allclose(fbank(wav), reference(wav), atol=2e-3)


def test_too_short_gives_no_frames() -> None:
    assert fbank(np.zeros(399, dtype=np.float32)).shape == (0, N_MELS)
    assert num_frames(399) == 0 and num_frames(400) == 1 and num_frames(560) == 2


def test_batch_of_windows_equals_one_by_one() -> None:
    batch = (0.1 * np.random.default_rng(1).standard_normal((3, 4000))).astype(np.float32)
    np.testing.assert_allclose(fbank(batch), np.stack([fbank(w) for w in batch]), atol=1e-5)


def test_tone_lands_in_its_band() -> None:
    t = np.arange(16000) / 16000
    feats = fbank(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    peak = int(np.argmax(feats.mean(axis=0)))
    centre = np.argmax(filters(), axis=0) * 16000 / 512  # each filter's peak frequency
    assert abs(centre[peak] - 1000) < 100


def test_mean_normalised_has_zero_mean_per_window() -> None:
    feats = fbank((0.1 * np.random.default_rng(2).standard_normal((2, 8000))).astype(np.float32))
    np.testing.assert_allclose(mean_normalised(feats).mean(axis=-2), 0.0, atol=1e-5)
