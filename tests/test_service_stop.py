"""Each scaled-out command (``api``, ``worker``, ``beat``, ``metrics``) stops on SIGTERM, SIGINT and SIGHUP
within 30 s and leaves no process behind (systemd, ``docker stop`` and process managers send the signal
to the main process only), and writes only JSON lines to stdout. Real processes on the real Redis;
``serve`` has its own tests (tests/e2e/test_serve.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from process_helpers import processes_with, wait_for

SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def _inherit_ignored_signals() -> None:
    """Start the command as nohup or a script's background job would: SIGHUP and SIGINT ignored, which
    a child inherits; each command must install its own handlers to stop on them all the same."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _command(name: str, port: int) -> tuple[list[str], Callable[[Path], bool]]:
    """The command line of ``name`` and how to tell it is up (from its log, or its port)."""
    if name == "api":  # two API processes: uvicorn's supervisor and its children must all stop
        return ["api", "--port", str(port), "--workers", "2"], lambda _: _answers(f"http://127.0.0.1:{port}/health")
    if name == "worker":  # prefork pool of two, with the embedded scheduler (a child process of its own)
        return ["worker", "--concurrency", "2", "--beat"], lambda log: "ready." in log.read_text()
    if name == "beat":
        return ["beat"], lambda log: "beat: Starting" in log.read_text()
    return ["metrics", "--port", str(port)], lambda _: _answers(f"http://127.0.0.1:{port}/metrics")


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("name", ["api", "worker", "beat", "metrics"])
def test_a_stop_signal_stops_the_command_and_all_its_processes(
    tmp_path: Path, redis_base: str, name: str, signum: signal.Signals
) -> None:
    data = tmp_path / "data"
    marker = f"DATA_DIR={data}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "PROMETHEUS"))}
    env.update(DATA_DIR=str(data), WARMUP="false", CELERY_BROKER_URL=f"{redis_base}/11", LOG_LEVEL="INFO")
    argv, is_up = _command(name, _port())
    log, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with open(log, "wb") as out, open(err, "wb") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxyai.cli", *argv],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=errors,
            start_new_session=True,
            preexec_fn=_inherit_ignored_signals,
        )
    try:
        assert wait_for(lambda: proc.poll() is None and is_up(log), 90), (
            f"{name} did not start:\n{err.read_text()[-3000:]}"
        )
        if name == "worker":  # the pool's two processes and the scheduler's, beside the main one
            assert wait_for(lambda: len(processes_with(marker)) >= 4, 30), processes_with(marker)
        started = time.monotonic()
        os.kill(proc.pid, signum)  # the main process only, as a service manager does
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} still running 30 s after {signum.name}:\n{err.read_text()[-3000:]}") from None
        left = wait_for(lambda: not processes_with(marker), 30 - (time.monotonic() - started))
        assert left, f"{name}: processes outlived it after {signum.name}: {processes_with(marker)}"
        for number, line in enumerate(log.read_text().splitlines(), 1):  # stdout: JSON lines only
            assert line.startswith("{") and isinstance(json.loads(line), dict), f"{name} stdout {number}: {line!r}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
