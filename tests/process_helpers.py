"""Helpers for the tests that start the service's processes: find them by their data folder, wait."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def processes_with(marker: str) -> set[int]:
    """Processes whose environment holds ``marker`` (a test's ``DATA_DIR=…``)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
    return found


def wait_for(predicate: Callable[[], object], seconds: float) -> bool:
    """Whether ``predicate`` holds within ``seconds`` (polled every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(folder: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``proxyai api`` on a free loopback port, with ``settings`` (environment names), once it
    answers ``/health`` with 200 (within 60 s); stop it with :func:`stop_group`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "PROMETHEUS"))}
    env.update(DATA_DIR=str(folder / "data"), WARMUP="false", **settings)
    api = subprocess.Popen(
        [sys.executable, "-m", "proxyai.cli", "api", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return api.poll() is not None

    if not wait_for(answers, 60) or api.poll() is not None:
        stop_group(api)
        raise AssertionError("proxyai api did not start")
    return api, base


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


STAGES = ("queue", "prepare", "decode", "vad", "asr", "diarization", "merge", "total")


def check_timings(timings: dict[str, float]) -> None:
    """Every stage of a service job timed: the queue wait and each stage within the whole."""
    assert set(timings) >= set(STAGES), timings
    assert all(timings[s] >= 0 for s in STAGES), timings
    assert timings["prepare"] >= timings["decode"] + timings["vad"] - 0.01, timings
    assert timings["total"] >= timings["queue"] + timings["prepare"], timings
    assert timings["total"] >= max(timings["asr"], timings["diarization"]), timings
