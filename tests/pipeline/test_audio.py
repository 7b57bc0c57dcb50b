"""Decoding real files written with PyAV: formats, channels, rates, video containers and bad input."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from audio_helpers import lying_flac, silent_flac

from proxyai.pipeline.audio import SAMPLE_RATE, Audio, AudioError, decode, probe


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _add_audio_stream(out: av.container.OutputContainer, codec: str, rate: int, channels: int) -> av.AudioStream:
    return out.add_stream(codec, rate=rate, layout="stereo" if channels == 2 else "mono")


def _encode_audio(out: av.container.OutputContainer, stream: av.AudioStream, data: np.ndarray, rate: int) -> None:
    data = np.atleast_2d(np.asarray(data, dtype=np.float32))
    layout = "stereo" if data.shape[0] == 2 else "mono"
    for i in range(0, data.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i : i + 1024]), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def write_audio(path: Path, data: np.ndarray, rate: int, codec: str) -> Path:
    """Write ``data`` (``(n,)`` or ``(channels, n)`` float) as ``codec`` in the container ``path`` implies."""
    data = np.atleast_2d(data)
    with av.open(str(path), "w") as out:
        stream = _add_audio_stream(out, codec, rate, data.shape[0])
        _encode_audio(out, stream, data, rate)
    return path


def write_video(path: Path, vcodec: str, audio: np.ndarray | None = None, seconds: float = 1.0) -> Path:
    """A small video (64×64 frames at 10 fps), with an AAC 16 kHz mono track when ``audio`` is given."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(vcodec, rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        astream = _add_audio_stream(out, "aac", SAMPLE_RATE, 1) if audio is not None else None
        for i in range(int(seconds * 10)):
            image = np.full((64, 64, 3), (i * 20) % 256, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if astream is not None:
            assert audio is not None
            _encode_audio(out, astream, audio, SAMPLE_RATE)
    return path


def dominant_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


FORMATS = [
    ("tone.wav", "pcm_s16le", 16000),
    ("tone.flac", "flac", 44100),
    ("tone.mp3", "libmp3lame", 44100),
    ("tone.ogg", "libopus", 48000),
    ("tone.m4a", "aac", 22050),
]


@pytest.mark.parametrize(("name", "codec", "rate"), FORMATS, ids=[f[0] for f in FORMATS])
def test_decode_formats_to_16k_mono_float32(tmp_path: Path, name: str, codec: str, rate: int) -> None:
    path = write_audio(tmp_path / name, _tone(440, 2.0, rate), rate, codec)
    audio = decode(path)
    assert isinstance(audio, Audio)
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.samples.ndim == 1
    assert audio.samples.dtype == np.float32
    assert audio.channels == 1
    # lossy codecs add priming/padding samples: allow 150 ms
    assert audio.duration == pytest.approx(2.0, abs=0.15)
    assert np.isfinite(audio.samples).all()
    middle = audio.samples[SAMPLE_RATE // 2 : SAMPLE_RATE + SAMPLE_RATE // 2]
    assert dominant_frequency(middle) == pytest.approx(440, abs=5)
    assert float(np.sqrt(np.mean(middle**2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_noise_decodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(SAMPLE_RATE)).clip(-1, 1).astype(np.float32)
    audio = decode(write_audio(tmp_path / "noise.flac", noise, SAMPLE_RATE, "flac"))
    assert audio.samples.shape == (SAMPLE_RATE,)
    # flac of 16-bit PCM at the same rate: sample for sample (to 16-bit precision)
    np.testing.assert_allclose(audio.samples, noise, atol=1e-4)


def test_stereo_48k_keep_channels(tmp_path: Path) -> None:
    rate = 48000
    stereo = np.stack([_tone(300, 1.5, rate), _tone(1200, 1.5, rate, amplitude=0.3)])
    path = write_audio(tmp_path / "stereo.wav", stereo, rate, "pcm_s16le")
    audio = decode(path, keep_channels=True)
    assert audio.samples.ndim == 2
    assert audio.samples.shape[0] == 2
    assert audio.channels == 2
    assert audio.samples.shape[1] == pytest.approx(1.5 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.02)
    assert audio.duration == pytest.approx(1.5, abs=0.02)
    left, right = audio.samples
    assert not np.allclose(left, right, atol=1e-2)
    # each channel keeps its own tone (the channels were not swapped or mixed)
    assert dominant_frequency(left) == pytest.approx(300, abs=5)
    assert dominant_frequency(right) == pytest.approx(1200, abs=5)
    assert float(np.abs(right).max()) == pytest.approx(0.3, abs=0.03)
    # mono() is the average of the channels
    np.testing.assert_allclose(audio.mono(), (left + right) / 2, atol=1e-6)
    assert audio.mono().dtype == np.float32


def test_stereo_without_keep_channels_is_mono_mix(tmp_path: Path) -> None:
    rate = 48000
    stereo = np.stack([_tone(300, 1.0, rate), _tone(1200, 1.0, rate)])
    path = write_audio(tmp_path / "stereo.wav", stereo, rate, "pcm_s16le")
    mono = decode(path)
    kept = decode(path, keep_channels=True)
    assert mono.samples.ndim == 1
    assert mono.duration == pytest.approx(1.0, abs=0.02)
    n = min(len(mono.samples), kept.samples.shape[1])
    # the down-mix holds both tones at comparable levels
    spectrum = np.abs(np.fft.rfft(mono.samples[:n]))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    p300 = spectrum[np.argmin(np.abs(freqs - 300))]
    p1200 = spectrum[np.argmin(np.abs(freqs - 1200))]
    assert p300 > 0 and p1200 > 0
    assert 0.5 < p300 / p1200 < 2.0


def test_mono_file_with_keep_channels_stays_1d(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "mono.wav", _tone(440, 0.5, SAMPLE_RATE), SAMPLE_RATE, "pcm_s16le")
    audio = decode(path, keep_channels=True)
    assert audio.samples.ndim == 1
    assert audio.channels == 1


def test_8k_resampled_to_16k(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "phone.wav", _tone(440, 3.0, 8000), 8000, "pcm_s16le")
    audio = decode(path)
    assert audio.sample_rate == SAMPLE_RATE
    assert len(audio.samples) == pytest.approx(3.0 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.01)
    assert audio.duration == pytest.approx(3.0, abs=0.01)
    assert dominant_frequency(audio.samples[4000:-4000]) == pytest.approx(440, abs=3)


def test_decode_to_other_rate(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "tone.wav", _tone(440, 1.0, SAMPLE_RATE), SAMPLE_RATE, "pcm_s16le")
    audio = decode(path, sample_rate=8000)
    assert audio.sample_rate == 8000
    assert len(audio.samples) == pytest.approx(8000, abs=80)
    assert audio.duration == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(("name", "vcodec"), [("clip.mp4", "libx264"), ("clip.mkv", "mpeg4")])
def test_video_with_audio_track(tmp_path: Path, name: str, vcodec: str) -> None:
    path = write_video(tmp_path / name, vcodec, audio=_tone(660, 1.5, SAMPLE_RATE), seconds=1.5)
    audio = decode(path)
    assert audio.samples.ndim == 1
    assert audio.duration == pytest.approx(1.5, abs=0.15)
    assert dominant_frequency(audio.samples[4000:20000]) == pytest.approx(660, abs=5)
    info = probe(path)
    assert info.channels == 1
    assert info.sample_rate == SAMPLE_RATE
    assert info.codec == "aac"


@pytest.mark.parametrize(("name", "vcodec"), [("silent.mp4", "libx264"), ("silent.webm", "libvpx")])
def test_video_without_audio_raises(tmp_path: Path, name: str, vcodec: str) -> None:
    path = write_video(tmp_path / name, vcodec)
    with pytest.raises(AudioError, match="no audio"):
        decode(path)
    with pytest.raises(AudioError, match="no audio"):
        probe(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        decode(path)
    with pytest.raises(AudioError):
        probe(path)


def test_random_bytes_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 64_000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError):
        decode(path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("These are meeting notes, not a recording.\n" * 50)
    with pytest.raises(AudioError):
        decode(path)


def test_nonexistent_path(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        decode(tmp_path / "missing.wav")
    with pytest.raises(AudioError):
        probe(tmp_path / "missing.wav")


def test_audio_error_is_value_error() -> None:
    assert issubclass(AudioError, ValueError)


def test_truncated_mp3_decodes_shorter_or_raises_audio_error(tmp_path: Path) -> None:
    full = write_audio(tmp_path / "full.mp3", _tone(440, 4.0, 44100), 44100, "libmp3lame")
    data = full.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])
    try:
        audio = decode(cut)
    except AudioError:
        return
    assert 0 < audio.duration < 4.0 - 0.5
    assert audio.duration == pytest.approx(2.0, abs=0.6)
    assert np.isfinite(audio.samples).all()


def test_truncated_wav_keeps_what_is_there(tmp_path: Path) -> None:
    full = write_audio(tmp_path / "full.wav", _tone(440, 2.0, SAMPLE_RATE), SAMPLE_RATE, "pcm_s16le")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    try:
        audio = decode(cut)
    except AudioError:
        return
    assert audio.duration == pytest.approx(1.0, abs=0.05)


def test_short_clip(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "short.wav", _tone(440, 0.3, 44100), 44100, "pcm_s16le")
    audio = decode(path)
    assert audio.duration == pytest.approx(0.3, abs=0.01)
    assert len(audio.samples) == pytest.approx(4800, abs=160)


def test_probe(tmp_path: Path) -> None:
    rate = 48000
    stereo = np.stack([_tone(300, 2.5, rate), _tone(500, 2.5, rate)])
    path = write_audio(tmp_path / "probe.flac", stereo, rate, "flac")
    info = probe(path)
    assert info.duration == pytest.approx(2.5, abs=0.05)
    assert info.channels == 2
    assert info.sample_rate == rate
    assert info.codec == "flac"
    assert info.container == "flac"


def test_probe_compressed(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "probe.mp3", _tone(300, 3.0, 22050), 22050, "libmp3lame")
    info = probe(path)
    assert info.duration == pytest.approx(3.0, abs=0.15)
    assert info.channels == 1
    assert info.sample_rate == 22050
    assert "mp3" in info.codec


def test_decode_accepts_str_path(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "s.wav", _tone(440, 0.5, SAMPLE_RATE), SAMPLE_RATE, "pcm_s16le")
    assert decode(str(path)).duration == pytest.approx(0.5, abs=0.01)


def test_audio_properties() -> None:
    mono = Audio(np.zeros(8000, dtype=np.float32))
    assert mono.channels == 1
    assert mono.duration == pytest.approx(0.5)
    assert mono.mono() is mono.samples
    stereo = Audio(np.stack([np.ones(16000), np.zeros(16000)]).astype(np.float32))
    assert stereo.channels == 2
    assert stereo.duration == pytest.approx(1.0)
    np.testing.assert_allclose(stereo.mono(), 0.5)


@pytest.mark.parametrize(("name", "codec", "rate"), FORMATS[2:], ids=[f[0] for f in FORMATS[2:]])
@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9])
def test_truncated_files_never_raise_other_errors(
    tmp_path: Path, name: str, codec: str, rate: int, fraction: float
) -> None:
    data = write_audio(tmp_path / name, _tone(440, 2.0, rate), rate, codec).read_bytes()
    cut = tmp_path / f"cut{Path(name).suffix}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    try:
        audio = decode(cut)
    except AudioError:
        return
    assert 0 < audio.duration <= 2.0 + 0.15
    assert np.isfinite(audio.samples).all()


def test_directory_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioError):
        decode(tmp_path)


def test_a_header_that_lies_about_the_duration_sizes_no_buffer(tmp_path: Path) -> None:
    """A FLAC claiming a million seconds (2 s inside) decodes to its 2 s with memory for the samples that
    arrive, not the 60 GiB the header asks for."""
    import tracemalloc

    path = lying_flac(tmp_path / "liar.flac")
    assert probe(path).duration > 900_000  # the header does say so
    tracemalloc.start()
    try:
        audio = decode(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert audio.duration == pytest.approx(2.0, abs=0.05)
    assert peak < 100 * 2**20, f"decoding peaked at {peak / 2**20:.0f} MiB"


def test_decoding_stops_past_max_seconds_naming_the_setting(tmp_path: Path) -> None:
    from proxyai.pipeline.audio import DurationError

    path = write_audio(tmp_path / "long.flac", _tone(300, 12.0, 16000), 16000, "flac")
    assert decode(path, max_seconds=12.5).duration == pytest.approx(12.0, abs=0.05)
    with pytest.raises(DurationError, match="MAX_DURATION"):
        decode(path, max_seconds=5.0)
    stereo = write_audio(tmp_path / "long.wav", np.stack([_tone(300, 12.0, 16000)] * 2), 16000, "pcm_s16le")
    with pytest.raises(DurationError, match="longer than 5 s"):
        decode(stereo, keep_channels=True, max_seconds=5.0)


@pytest.mark.parametrize("channels", [1, 2])
def test_decoding_holds_the_samples_once(tmp_path: Path, channels: int) -> None:
    """Five minutes decode with a peak of about the decoded samples' own size: no buffer grown by copies,
    no header-sized guess (the samples go to a temporary file first and are read back once)."""
    import tracemalloc

    path = silent_flac(tmp_path / "silence.flac", 300.0, 44100, channels)
    tracemalloc.start()
    try:
        audio = decode(path, keep_channels=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert audio.samples.shape == ((300 * SAMPLE_RATE,) if channels == 1 else (2, 300 * SAMPLE_RATE))
    size = audio.samples.nbytes
    assert peak < size * (1.25 if channels == 1 else 1.75), f"peak {peak / size:.2f}× the samples"
