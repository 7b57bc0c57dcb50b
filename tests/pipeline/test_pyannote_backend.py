"""The pyannote backend: loading a pipeline (or saying how to fix why it cannot), and its output to turns."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from proxyai.pipeline.audio import SAMPLE_RATE
from proxyai.pipeline.diarize import DiarizationError, DiarizationOptions, Turn
from proxyai.pipeline.pyannote_backend import annotation_to_turns, diarize_pyannote, load_pipeline


def pyannote_audio_import_error() -> str | None:
    """Why ``pyannote.audio`` cannot be imported here, or None when it can."""
    try:
        import pyannote.audio  # noqa: F401
    except Exception as exc:  # ImportError, or a torchaudio that does not match torch
        return f"{type(exc).__name__}: {exc}"
    return None


IMPORT_ERROR = pyannote_audio_import_error()
needs_pyannote_audio = pytest.mark.skipif(
    IMPORT_ERROR is not None,
    reason=f"pyannote.audio cannot be imported here (torchaudio/torch mismatch): {IMPORT_ERROR}",
)


# --- annotation_to_turns -----------------------------------------------------------------------


@pytest.fixture
def annotation() -> object:
    core = pytest.importorskip("pyannote.core", reason="pyannote.core is not installed")
    ann = core.Annotation(uri="call")
    ann[core.Segment(5.0, 7.5)] = "SPK_A"
    ann[core.Segment(0.5, 2.123456)] = "SPK_B"
    ann[core.Segment(2.5, 4.0)] = "SPK_A"
    ann[core.Segment(6.0, 6.8), "overlap"] = "SPK_C"
    ann[core.Segment(8.0, 9.0)] = "SPK_B"
    return ann


def test_annotation_to_turns(annotation: object) -> None:
    turns = annotation_to_turns(annotation)
    assert turns == [
        Turn(0.5, 2.123, "SPEAKER_00"),
        Turn(2.5, 4.0, "SPEAKER_01"),
        Turn(5.0, 7.5, "SPEAKER_01"),
        Turn(6.0, 6.8, "SPEAKER_02"),  # overlapped speech is kept
        Turn(8.0, 9.0, "SPEAKER_00"),
    ]


def test_pyannote4_output_holding_an_annotation(annotation: object) -> None:
    # pyannote.audio 4 returns an object whose ``speaker_diarization`` is the annotation
    output = SimpleNamespace(speaker_diarization=annotation, exclusive_speaker_diarization=None)
    assert annotation_to_turns(output) == annotation_to_turns(annotation)


def test_empty_annotation() -> None:
    core = pytest.importorskip("pyannote.core", reason="pyannote.core is not installed")
    assert annotation_to_turns(core.Annotation()) == []


# --- diarize_pyannote ----------------------------------------------------------------------------


def test_diarize_pyannote_passes_waveform_and_counts() -> None:
    """Any callable with pyannote's calling convention works as the pipeline (pyannote.audio cannot run here)."""
    core = pytest.importorskip("pyannote.core", reason="pyannote.core is not installed")
    torch = pytest.importorskip("torch")
    calls: list[dict[str, object]] = []

    def pipeline(file: dict[str, object], **kwargs: int) -> object:
        waveform = file["waveform"]
        assert isinstance(waveform, torch.Tensor)
        calls.append({"shape": tuple(waveform.shape), "dtype": waveform.dtype, "rate": file["sample_rate"], **kwargs})
        duration = waveform.shape[-1] / file["sample_rate"]
        ann = core.Annotation()
        ann[core.Segment(duration / 2, duration)] = "late"
        ann[core.Segment(0.0, duration / 2)] = "early"
        return ann

    samples = np.zeros(SAMPLE_RATE * 4, dtype=np.float64)
    turns = diarize_pyannote(pipeline, samples, DiarizationOptions(backend="pyannote", min_speakers=2, max_speakers=3))
    assert turns == [Turn(0.0, 2.0, "SPEAKER_00"), Turn(2.0, 4.0, "SPEAKER_01")]
    assert calls[0] == {
        "shape": (1, SAMPLE_RATE * 4),
        "dtype": torch.float32,
        "rate": SAMPLE_RATE,
        "min_speakers": 2,
        "max_speakers": 3,
    }
    diarize_pyannote(pipeline, samples, DiarizationOptions(backend="pyannote", num_speakers=2))
    assert calls[1]["num_speakers"] == 2
    assert "min_speakers" not in calls[1] and "max_speakers" not in calls[1]


# --- load_pipeline -------------------------------------------------------------------------------


@pytest.mark.skipif(IMPORT_ERROR is None, reason="pyannote.audio can be imported here")
@pytest.mark.parametrize("protocol", [None, "pyannote/speaker-diarization-3.1", "/nonexistent/pipeline"])
def test_load_pipeline_without_pyannote_audio_says_how_to_fix(protocol: str | None) -> None:
    with pytest.raises(DiarizationError) as info:
        load_pipeline(protocol)
    message = str(info.value)
    assert "pyannote.audio" in message
    assert "pip install" in message
    assert "proxyai[pyannote]" in message
    assert "--diarization embedded" in message


def write_local_pipeline(directory: Path) -> None:
    """A real pyannote.audio pipeline that needs no downloaded weights: one module and its config.yaml."""
    (directory / "proxyai_test_pipeline.py").write_text(
        textwrap.dedent(
            """
            from pyannote.audio import Pipeline
            from pyannote.core import Annotation, Segment


            class HalfAndHalf(Pipeline):
                def __init__(self, **kwargs):
                    super().__init__()

                def apply(self, file, **kwargs):
                    duration = file["waveform"].shape[-1] / file["sample_rate"]
                    annotation = Annotation()
                    annotation[Segment(0.0, duration / 2)] = "second"
                    annotation[Segment(duration / 2, duration)] = "first"
                    return annotation
            """
        )
    )
    (directory / "config.yaml").write_text("pipeline:\n  name: proxyai_test_pipeline.HalfAndHalf\n  params: {}\n")


@needs_pyannote_audio
def test_load_pipeline_from_local_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyannote.audio import Pipeline

    write_local_pipeline(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    pipeline = load_pipeline(str(tmp_path))
    assert isinstance(pipeline, Pipeline)
    assert type(pipeline).__name__ == "HalfAndHalf"
    samples = np.zeros(SAMPLE_RATE * 2, dtype=np.float32)
    turns = diarize_pyannote(pipeline, samples, DiarizationOptions(backend="pyannote"))
    assert turns == [Turn(0.0, 1.0, "SPEAKER_00"), Turn(1.0, 2.0, "SPEAKER_01")]


@needs_pyannote_audio
def test_load_pipeline_from_directory_without_config_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DiarizationError, match="PYANNOTE_PROTOCOL"):
        load_pipeline(str(tmp_path))
