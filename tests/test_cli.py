"""The ``proxyai`` command line, run as a real subprocess on real audio with the real models.

Every test here starts the CLI in a fresh process, so a model run costs a model load plus the
recognition itself (a few seconds on a CPU). Results shared between tests come from module-scoped
fixtures; inputs that must be made (resampled, cut, concatenated, wrapped in a video) are written
once per module with PyAV and the standard library.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

slow = pytest.mark.slow

# Settings the CLI reads from the environment: cleared so that the defaults under test apply.
_CLI_ENV_VARS = (
    "WHISPER_MODEL_PATH",
    "WHISPER_MODEL",
    "WHISPER_DEVICE",
    "WHISPER_COMPUTE_TYPE",
    "VAD_LEVEL",
    "SEGMENT_LENGTH_S",
    "PYANNOTE_PROTOCOL",
    "HUGGINGFACE_TOKEN",
    "DIARIZATION_BACKEND",
    "DIARIZER_CACHE_DIR",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLI_ENV_VARS}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def cli(
    *args: Any, script: bool = False, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``proxyai ARGS`` (``python -m proxyai.cli``, or the installed console script).

    Output is decoded by hand so that carriage returns (a progress bar's redraws) stay as they are.
    """
    command = [str(VENV_BIN / "proxyai")] if script else [sys.executable, "-m", "proxyai.cli"]
    proc = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**_env(), **(env or {})},
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    )


def screen(text: str) -> list[str]:
    """The non-blank lines a terminal would show for ``text`` (each ``\\r`` returns to column 0)."""
    shown = []
    for raw in text.split("\n"):
        line = ""
        for part in raw.split("\r"):
            line = part + line[len(part) :]
        if line.strip():
            shown.append(line.rstrip())
    return shown


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert a clean success and return the process."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc


def ok_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    ok(proc)
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    return result


def assert_one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit, one ``proxyai: error:`` line on stderr, no traceback; returns that line."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode != 0
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1 and "\r" not in proc.stderr, (
        f"expected one line on stderr, got:\n{proc.stderr!r}"
    )
    assert proc.stderr.startswith("proxyai: error:"), proc.stderr
    assert proc.stdout == ""
    return proc.stderr.rstrip("\n")


def speaker_ids(result: dict[str, Any]) -> list[str]:
    return [s["id"] for s in result["speakers"]]


def full_text(result: dict[str, Any]) -> str:
    return " ".join(s["text"] for s in result["segments"])


def check_structure(result: dict[str, Any]) -> None:
    """Invariants every JSON result holds, whatever the input."""
    assert set(result) >= {
        "duration",
        "language",
        "language_probability",
        "speakers",
        "segments",
        "diarization",
        "model",
        "timings",
    }
    assert result["duration"] >= 0
    ids = speaker_ids(result)
    assert ids == sorted(set(ids))
    previous = -1.0
    for seg in result["segments"]:
        assert 0 <= seg["start"] < seg["end"] <= result["duration"] + 0.05, seg
        assert seg["start"] >= previous, "segments out of time order"
        previous = seg["start"]
        assert seg["speaker"] is None or seg["speaker"] in ids
        assert isinstance(seg["text"], str) and seg["text"].strip()
        for w in seg["words"]:
            assert set(w) == {"start", "end", "word", "probability"}
            assert w["start"] <= w["end"]
            assert seg["start"] - 1e-6 <= w["start"] and w["end"] <= seg["end"] + 1e-6, (w, seg["start"], seg["end"])
            assert 0.0 <= w["probability"] <= 1.0
    for turn in result["diarization"]:
        assert 0 <= turn["start"] < turn["end"]
        assert turn["speaker"] in ids
    assert set(result["timings"]) >= {"decode", "vad", "asr", "diarization", "total"}
    assert all(v >= 0 for v in result["timings"].values())


# ---------------------------------------------------------------------------------------------------
# making inputs


def load(path: Path, rate: int, layout: str = "mono") -> np.ndarray:
    """Decode ``path`` to float32 ``(channels, n)`` at ``rate`` with PyAV."""
    pieces = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        for frame in container.decode(audio=0):
            frame.pts = None
            pieces += [f.to_ndarray() for f in resampler.resample(frame)]
        pieces += [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(pieces, axis=1).astype(np.float32)


def write_wav(path: Path, data: np.ndarray, rate: int) -> Path:
    """16-bit PCM wav from float ``(n,)`` or ``(channels, n)``."""
    data = np.atleast_2d(data)
    pcm = (np.clip(data, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(data.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.T.tobytes())
    return path


def write_video(path: Path, seconds: float, audio: np.ndarray | None = None, rate: int = 16000) -> Path:
    """An mp4 with a small mpeg4 video stream (64×64, 10 fps) and, when given, ``audio`` as AAC."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        astream = out.add_stream("aac", rate=rate, layout="mono") if audio is not None else None
        for i in range(int(seconds * 10)):
            image = np.full((64, 64, 3), (i * 20) % 256, dtype=np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode(None))
        if astream is not None:
            assert audio is not None
            samples = np.atleast_2d(audio).astype(np.float32)
            for i in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, i : i + 1024]), format="fltp", layout="mono"
                )
                frame.sample_rate = rate
                out.mux(astream.encode(frame))
            out.mux(astream.encode(None))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli_media")


@pytest.fixture(scope="module")
def dialogue(shared_audio: Path) -> Path:
    return shared_audio / "dialogue_2spk.wav"


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> Path:
    return shared_audio / "jfk.flac"


# ---------------------------------------------------------------------------------------------------
# the console script


def test_console_script_is_installed() -> None:
    script = VENV_BIN / "proxyai"
    assert script.is_file() and os.access(script, os.X_OK), f"no console script at {script}"
    proc = ok(cli("--version", script=True))
    assert re.fullmatch(r"proxyai \S+\n", proc.stdout)
    proc = ok(cli("transcribe", "--help", script=True))
    assert "--diarization" in proc.stdout and "--names" in proc.stdout


def test_no_command_is_a_usage_error() -> None:
    proc = cli()
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "usage: proxyai" in proc.stderr


# ---------------------------------------------------------------------------------------------------
# 1. the JSON result on a two-speaker dialogue


@pytest.fixture(scope="module")
def dialogue_json(dialogue: Path) -> dict[str, Any]:
    return ok_json(cli("transcribe", dialogue, "--format", "json"))


@slow
def test_json_result_on_dialogue(dialogue_json: dict[str, Any]) -> None:
    r = dialogue_json
    check_structure(r)
    assert r["duration"] == pytest.approx(29.24, abs=0.05)
    assert r["language"] == "en"
    assert 0.5 < r["language_probability"] <= 1.0
    assert r["speakers"] == [
        {"id": "SPEAKER_00", "label": "SPEAKER_00"},
        {"id": "SPEAKER_01", "label": "SPEAKER_01"},
    ]
    assert r["model"] == {"asr": "base", "diarization": "embedded"}
    assert r["diarization"], "no diarization turns"
    assert {t["speaker"] for t in r["diarization"]} == {"SPEAKER_00", "SPEAKER_01"}
    assert r["timings"]["total"] >= max(r["timings"]["asr"], r["timings"]["diarization"]) - 0.01
    assert len(r["segments"]) >= 8
    assert all(s["words"] for s in r["segments"])
    assert "child" in full_text(r).lower()


@slow
def test_json_segments_follow_the_speaker_turns(dialogue_json: dict[str, Any], shared_audio: Path) -> None:
    """No segment mixes speakers: every word overlapping a turn overlaps a turn of the segment's speaker
    most; and the segments' speakers follow the reference turns (up to naming)."""
    r = dialogue_json
    turns = r["diarization"]
    for seg in r["segments"]:
        for w in seg["words"]:
            overlaps = {t["speaker"]: 0.0 for t in turns}
            for t in turns:
                overlaps[t["speaker"]] += max(0.0, min(w["end"], t["end"]) - max(w["start"], t["start"]))
            best = max(overlaps, key=lambda s: overlaps[s])
            if overlaps[best] > 0:
                assert best == seg["speaker"], (w, seg["speaker"], seg["text"])

    reference = json.loads((shared_audio / "dialogue_2spk.json").read_text())["segments"]
    votes: dict[tuple[str, str], float] = {}
    for seg in r["segments"]:
        for ref in reference:
            overlap = max(0.0, min(seg["end"], ref["end"]) - max(seg["start"], ref["start"]))
            key = (seg["speaker"], ref["speaker"])
            votes[key] = votes.get(key, 0.0) + overlap
    mapping = {"SPEAKER_00": "spk1", "SPEAKER_01": "spk2"}
    agree = sum(v for (hyp, ref), v in votes.items() if mapping[hyp] == ref)
    assert agree / sum(votes.values()) > 0.9


# ---------------------------------------------------------------------------------------------------
# 2. output formats and speaker names


@slow
def test_default_txt_to_stdout_without_progress_bar(dialogue: Path) -> None:
    """No flags: TXT on stdout, and a 29 s input shows no progress bar (stderr stays empty)."""
    proc = ok(cli("transcribe", dialogue, script=True))
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) >= 8
    for line in lines:
        assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] SPEAKER_0[01]: \S.*", line), line
    assert lines[0].startswith("[00:00:00] SPEAKER_00: ")
    assert "child" in lines[0].lower()
    assert {line.split(": ")[0].split("] ")[1] for line in lines} == {"SPEAKER_00", "SPEAKER_01"}


@slow
def test_srt_from_the_output_extension_with_names(dialogue: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.srt"
    proc = ok(cli("transcribe", dialogue, "-o", out, "--names", "SPEAKER_00=Anna,SPEAKER_01=Oleg"))
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.srt"], "a .part file was left behind"
    text = out.read_text(encoding="utf-8")
    blocks = text.strip().split("\n\n")
    assert len(blocks) >= 8
    for i, block in enumerate(blocks, 1):
        number, times, caption = block.split("\n")
        assert number == str(i)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", times), times
        assert re.match(r"(Anna|Oleg): \S", caption), caption
    assert "SPEAKER_" not in text
    assert blocks[0].split("\n")[2].startswith("Anna: ")
    assert "Oleg: " in text


@slow
def test_vtt_from_the_output_extension(jfk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vtt"
    proc = ok(cli("transcribe", jfk, "-o", out))
    assert proc.stdout == ""
    text = out.read_text(encoding="utf-8")
    assert text.startswith("WEBVTT\n\n")
    cues = text.strip().split("\n\n")[1:]
    assert cues
    for cue in cues:
        times, caption = cue.split("\n")
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", times), times
        assert caption.startswith("<v SPEAKER_00>"), caption
    assert "country" in text.lower()


@slow
def test_rttm_format_with_names(dialogue: Path, dialogue_json: dict[str, Any]) -> None:
    proc = ok(cli("transcribe", dialogue, "--format", "rttm", "--names", "SPEAKER_00=Anna,SPEAKER_01=Oleg"))
    lines = proc.stdout.splitlines()
    assert lines
    names = []
    for line in lines:
        fields = line.split()
        assert len(fields) == 10, line
        assert fields[0] == "SPEAKER" and fields[2] == "1"
        assert fields[5:7] == ["<NA>", "<NA>"] and fields[8:] == ["<NA>", "<NA>"]
        assert float(fields[3]) >= 0 and float(fields[4]) > 0
        names.append(fields[7])
    assert set(names) == {"Anna", "Oleg"}
    assert names[0] == "Anna"
    # The same audio, the same turns as the JSON run.
    assert len(lines) == len(dialogue_json["diarization"])


@slow
def test_bad_names_is_a_one_line_error(jfk: Path) -> None:
    assert_one_line_error(cli("transcribe", jfk, "--names", "Anna"))


# ---------------------------------------------------------------------------------------------------
# 3. options


@slow
@pytest.mark.parametrize("by", ["flag", "setting"])
def test_diarization_none(dialogue: Path, by: str) -> None:
    """``--diarization none``, or ``DIARIZATION_BACKEND=none`` in the environment (the service's setting)."""
    if by == "flag":
        r = ok_json(cli("transcribe", dialogue, "--format", "json", "--diarization", "none"))
    else:
        r = ok_json(cli("transcribe", dialogue, "--format", "json", env={"DIARIZATION_BACKEND": "none"}))
    check_structure(r)
    assert r["diarization"] == []
    assert r["speakers"] == []
    assert r["model"] == {"asr": "base", "diarization": "none"}
    assert r["segments"] and all(s["speaker"] is None for s in r["segments"])
    assert "child" in full_text(r).lower()


@slow
def test_num_speakers_one(dialogue: Path) -> None:
    r = ok_json(cli("transcribe", dialogue, "--format", "json", "--num-speakers", "1"))
    check_structure(r)
    assert speaker_ids(r) == ["SPEAKER_00"]
    assert {s["speaker"] for s in r["segments"]} == {"SPEAKER_00"}
    assert {t["speaker"] for t in r["diarization"]} == {"SPEAKER_00"}


@slow
def test_forced_language_is_honoured(jfk: Path) -> None:
    r = ok_json(cli("transcribe", jfk, "--format", "json", "--language", "ru", "--diarization", "none"))
    check_structure(r)
    assert r["language"] == "ru"


@slow
def test_translate(shared_audio: Path) -> None:
    r = ok_json(
        cli(
            "transcribe",
            shared_audio / "ru_support_call.wav",
            "--format",
            "json",
            "--task",
            "translate",
            "--diarization",
            "none",
        )
    )
    check_structure(r)
    assert r["language"] == "ru"
    letters = [c for c in full_text(r) if c.isalpha()]
    assert len(letters) > 50
    latin = sum(1 for c in letters if c.isascii())
    assert latin / len(letters) > 0.9, full_text(r)


# ---------------------------------------------------------------------------------------------------
# 4. bad input: one error line, never a traceback


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    line = assert_one_line_error(cli("transcribe", path))
    assert "empty" in line


def test_wav_header_without_samples(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "header_only.wav", np.zeros(0, dtype=np.float32), 16_000)
    line = assert_one_line_error(cli("transcribe", path))
    assert "no samples" in line


def test_random_bytes_named_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(np.random.default_rng(0).bytes(64_000))
    assert_one_line_error(cli("transcribe", path))


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Meeting notes\n- call Anna on Monday\n- send the contract to Oleg\n" * 20)
    assert_one_line_error(cli("transcribe", path))


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_video(tmp_path / "silent_film.mp4", seconds=2.0)
    line = assert_one_line_error(cli("transcribe", path))
    assert "no audio stream" in line


def test_nonexistent_path(tmp_path: Path) -> None:
    line = assert_one_line_error(cli("transcribe", tmp_path / "missing.wav"))
    assert "missing.wav" in line


@slow
def test_nonexistent_model_directory(jfk: Path) -> None:
    line = assert_one_line_error(cli("transcribe", jfk, "--model", "/nonexistent/dir"))
    assert "/nonexistent/dir" in line


@slow
def test_unknown_speaker_encoder_is_named(jfk: Path) -> None:
    line = assert_one_line_error(cli("transcribe", jfk, "--model", "tiny.en", "--encoder", "no-such-encoder"))
    assert "no-such-encoder" in line and "campplus" in line


@slow
def test_other_encoder_and_clustering(jfk: Path) -> None:
    proc = cli(
        "transcribe", jfk, "--model", "tiny.en", "--encoder", "ge2e", "--clustering", "spectral", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["speakers"]) == 1
    assert "ask not" in " ".join(s["text"] for s in result["segments"]).lower()


@slow
def test_unwritable_output_path(jfk: Path, tmp_path: Path) -> None:
    out = tmp_path / "no_such_dir" / "out.txt"
    line = assert_one_line_error(cli("transcribe", jfk, "-o", out, "--model", "tiny.en", "--diarization", "none"))
    assert "out.txt" in line
    assert not out.parent.exists()


@slow
def test_language_the_model_lacks_is_named_as_such(jfk: Path) -> None:
    """``ru`` is a Whisper language, but not one of the English-only tiny.en's: the error must say so
    rather than call ``ru`` unknown and suggest ``ru`` as a valid code."""
    line = assert_one_line_error(
        cli("transcribe", jfk, "--model", "tiny.en", "--language", "ru", "--diarization", "none")
    )
    assert "'ru'" in line
    assert "unknown language" not in line, line
    assert "model" in line, line


def test_num_speakers_zero(jfk: Path) -> None:
    proc = cli("transcribe", jfk, "--num-speakers", "0")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "--num-speakers" in proc.stderr
    assert proc.stdout == ""


@slow
def test_truncated_mp3(shared_audio: Path, tmp_path: Path) -> None:
    """The first 40 % of an mp3: either a shorter transcript or one error line, never a traceback."""
    data = (shared_audio / "multilingual.mp3").read_bytes()
    path = tmp_path / "truncated.mp3"
    path.write_bytes(data[: int(len(data) * 0.4)])
    proc = cli("transcribe", path, "--format", "json", "--diarization", "none")
    if proc.returncode != 0:
        assert_one_line_error(proc)
        return
    r = ok_json(proc)
    check_structure(r)
    assert 10 < r["duration"] < 45
    assert r["segments"]


# ---------------------------------------------------------------------------------------------------
# 5. awkward inputs that must still give a correct result


@slow
def test_no_speech_gives_an_empty_transcript(media: Path) -> None:
    noise = np.random.default_rng(1).normal(0.0, 0.002, 32_000).astype(np.float32)
    r = ok_json(cli("transcribe", write_wav(media / "noise.wav", noise, 16_000), "--format", "json"))
    check_structure(r)
    assert r["duration"] == pytest.approx(2.0, abs=0.01)
    assert r["segments"] == []
    assert r["speakers"] == []


@slow
def test_very_short_clip(media: Path, dialogue: Path) -> None:
    samples = load(dialogue, 16_000)[0]
    clip = write_wav(media / "short.wav", samples[16_000:20_800], 16_000)  # 0.3 s of "child almost"
    r = ok_json(cli("transcribe", clip, "--format", "json"))
    check_structure(r)
    assert r["duration"] == pytest.approx(0.3, abs=0.01)
    assert len(r["speakers"]) <= 1


@slow
def test_telephone_8khz(media: Path, dialogue: Path) -> None:
    phone = write_wav(media / "phone_8k.wav", load(dialogue, 8_000), 8_000)
    r = ok_json(cli("transcribe", phone, "--format", "json"))
    check_structure(r)
    assert r["duration"] == pytest.approx(29.24, abs=0.05)
    assert speaker_ids(r) == ["SPEAKER_00", "SPEAKER_01"]
    assert "child" in full_text(r).lower()


@slow
def test_stereo_48khz_with_the_same_mix_on_both_channels(media: Path, dialogue: Path) -> None:
    mono = load(dialogue, 48_000)[0]
    path = write_wav(media / "stereo_same_48k.wav", np.stack([mono, mono]), 48_000)
    r = ok_json(cli("transcribe", path, "--format", "json"))
    check_structure(r)
    assert r["model"]["diarization"] == "embedded", "identical channels must be treated as one mix"
    assert speaker_ids(r) == ["SPEAKER_00", "SPEAKER_01"]
    assert all("channel" not in s for s in r["segments"])
    assert "child" in full_text(r).lower()


@slow
def test_stereo_call_split_by_channel(shared_audio: Path) -> None:
    r = ok_json(cli("transcribe", shared_audio / "stereo_diarization.wav", "--format", "json"))
    check_structure(r)
    assert r["model"]["diarization"] == "channels"
    assert speaker_ids(r) == ["SPEAKER_00", "SPEAKER_01"]
    assert len(r["segments"]) == 2, [s["text"] for s in r["segments"]]
    by_word = {
        word: next(s for s in r["segments"] if word in s["text"].lower())["speaker"] for word in ("horizon", "wizard")
    }
    assert by_word["horizon"] != by_word["wizard"]
    assert {s["channel"] for s in r["segments"]} == {0, 1}


@slow
def test_video_with_an_audio_track(media: Path, jfk: Path) -> None:
    path = write_video(media / "talk.mp4", seconds=3.0, audio=load(jfk, 16_000))
    r = ok_json(cli("transcribe", path, "--format", "json"))
    check_structure(r)
    assert r["duration"] == pytest.approx(11.0, abs=0.2)
    assert "country" in full_text(r).lower()
    assert speaker_ids(r) == ["SPEAKER_00"]


# ---------------------------------------------------------------------------------------------------
# 6. the progress bar


@pytest.fixture(scope="module")
def long_input(media: Path, shared_audio: Path) -> Path:
    """70 s: the 60 s multilingual mp3 followed by 10 s of JFK."""
    mp3 = load(shared_audio / "multilingual.mp3", 16_000)[0]
    jfk = load(shared_audio / "jfk.flac", 16_000)[0][:160_000]
    return write_wav(media / "long_70s.wav", np.concatenate([mp3, jfk]), 16_000)


@slow
def test_progress_bar_for_a_long_input(long_input: Path) -> None:
    proc = ok(cli("transcribe", long_input, "--diarization", "none", "--model", "tiny.en"))
    assert "%" in proc.stderr
    assert "100%" in proc.stderr
    assert proc.stdout.strip()
    assert "%" not in proc.stdout


@slow
def test_quiet_hides_the_progress_bar(long_input: Path) -> None:
    proc = ok(cli("transcribe", long_input, "--diarization", "none", "--model", "tiny.en", "--quiet"))
    assert proc.stderr == ""


@slow
def test_failure_on_a_long_input_leaves_only_the_error_line(long_input: Path) -> None:
    """A bad model on an input long enough for the progress bar: the bar must not be left on the
    screen (a cleared bar is fine), only the error line."""
    proc = cli("transcribe", long_input, "--model", "/nonexistent/dir")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert screen(proc.stderr) == ["proxyai: error: /nonexistent/dir: no such model directory"], proc.stderr


@pytest.fixture(scope="module")
def longer_input(media: Path, long_input: Path) -> Path:
    """140 s: the 70 s input twice."""
    samples = load(long_input, 16_000)[0]
    return write_wav(media / "long_140s.wav", np.concatenate([samples, samples]), 16_000)


@slow
def test_ctrl_c_stops_promptly(longer_input: Path) -> None:
    """SIGINT while the models work: exit 130 within a few seconds, not after the whole job."""
    command = [sys.executable, "-m", "proxyai.cli", "transcribe", str(longer_input), "--format", "json"]
    # started with SIGINT ignored, as a background job of a script is: the command must still stop on it
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    chunks: list[bytes] = []

    def read() -> None:
        for chunk in iter(stderr.read1, b""):
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    try:
        reader.start()
        # the progress bar says recognition has begun: past the imports and the model loads
        deadline = time.monotonic() + 120
        while b"transcribing" not in b"".join(chunks) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("the run finished before the interrupt")
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        waited = time.monotonic() - interrupted
        reader.join(timeout=10)
        err = b"".join(chunks)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err
    assert waited < 5.0, f"Ctrl-C took {waited:.1f} s to stop the run"
