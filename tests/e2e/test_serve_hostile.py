"""Hostile files against ``proxyai serve``: each costs what its real samples cost, never what its header
claims, and the next ordinary job still runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from audio_helpers import lying_flac, silent_flac
from process_helpers import processes_with
from serve_helper import serve

pytestmark = pytest.mark.slow

PEAK_RSS_TARGET = 1.5 * 2**30  # the worker's peak on the two-hour silent file (issue 9)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    # MAX_DURATION above the liar's claim, so that its header passes the upload's probe and the worker
    # meets it (at the default the upload is refused: tests/api/test_uploads.py)
    with serve(tmp_path_factory.mktemp("hostile"), MAX_DURATION=str(2e6), RATE_LIMIT_UPLOAD="100/minute") as running:
        yield running


def _upload(base: str, key: str, path: Path) -> str:
    with open(path, "rb") as fh:
        r = httpx.post(f"{base}/upload/", files={"file": (path.name, fh)}, headers={"X-API-Key": key}, timeout=60)
    assert r.status_code == 200, r.text
    return str(r.json()["upload_id"])


def _finished(base: str, key: str, upload_id: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        status: dict[str, Any] = httpx.get(f"{base}/status/{upload_id}", headers={"X-API-Key": key}).json()
        if status["status"] in ("done", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


def _worker_peak_rss(folder: Path) -> int:
    """The largest peak resident set (VmHWM) among this server's worker processes, in bytes."""
    peak = 0
    for pid in processes_with(f"DATA_DIR={folder / 'data'}"):
        with contextlib.suppress(OSError):
            if b"worker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
    return peak


def _an_ordinary_job_runs(base: str, key: str, sample: Path) -> None:
    status = _finished(base, key, _upload(base, key, sample), 180)
    assert status["status"] == "done", status


def test_a_header_claiming_a_million_seconds_costs_its_two_real_seconds(
    server: tuple[str, str, Path], tmp_path: Path, shared_audio: Path
) -> None:
    base, key, _ = server
    upload_id = _upload(base, key, lying_flac(tmp_path / "liar.flac"))
    status = _finished(base, key, upload_id, 120)
    assert status["status"] == "done", status
    assert status["duration"] == pytest.approx(2.0, abs=0.1)  # the samples decoded, not the header
    _an_ordinary_job_runs(base, key, shared_audio / "dialogue_2spk.wav")


def test_two_hours_of_silence_stay_within_the_memory_target(
    server: tuple[str, str, Path], tmp_path: Path, shared_audio: Path
) -> None:
    base, key, folder = server
    path = silent_flac(tmp_path / "two-hours.flac", 2 * 3600.0)
    assert path.stat().st_size < 5_000_000
    upload_id = _upload(base, key, path)
    status = _finished(base, key, upload_id, 400)
    assert status["status"] == "done", status
    assert status["duration"] == pytest.approx(7200.0, abs=1.0)
    result = httpx.get(f"{base}/results/{upload_id}", headers={"X-API-Key": key}).json()
    assert result["transcript"] == []
    peak = _worker_peak_rss(folder)
    print(f"worker peak RSS on two hours of silence: {peak / 2**20:.0f} MiB")
    assert 0 < peak <= PEAK_RSS_TARGET, f"worker peak RSS {peak / 2**20:.0f} MiB"
    _an_ordinary_job_runs(base, key, shared_audio / "dialogue_2spk.wav")


def test_a_file_over_max_duration_fails_its_job_naming_the_setting(tmp_path: Path, shared_audio: Path) -> None:
    """The header says 1 s, the file holds 60 s, ``MAX_DURATION`` is 40 s: the upload passes the probe,
    decoding stops at 40 s and the job fails with a message naming the setting; the next job runs."""
    with serve(tmp_path, MAX_DURATION="40") as (base, key, _):
        liar = lying_flac(tmp_path / "liar.flac", seconds=60.0, claimed=1.0)
        status = _finished(base, key, _upload(base, key, liar), 120)
        assert status["status"] == "failed" and "MAX_DURATION" in status["error"], status
        _an_ordinary_job_runs(base, key, shared_audio / "dialogue_2spk.wav")
