"""Helpers for the worker tests (imported by ``conftest.py`` and the test modules): a real Redis, real
Celery worker processes, the API in-process.

Redis runs at 127.0.0.1:6379 (``redis_base`` in tests/conftest.py starts it when it is down); the tests
use their own database (``REDIS_URL``), flushed before each module and before workers start. Workers
are ``python -m proxyai.cli worker`` subprocesses in their own process group, configured through the
environment, their stdout (JSON lines) kept in a file per worker.
"""

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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# PROXYAI_TEST_REDIS_DB: another database, so that two test runs can share one Redis (each flushes its own)
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, int(os.environ.get("PROXYAI_TEST_REDIS_DB", "13"))
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
BOTH_QUEUES = "preprocess_cpu,preprocess_gpu"


# --- settings, app, audio --------------------------------------------------------------------------


def make_settings(data_dir: Path, broker: str | None = REDIS_URL, **overrides: Any) -> Any:
    """Settings for the test process (no ``.env``; every key that matters given explicitly)."""
    from proxyai.config import load_settings

    values: dict[str, Any] = {
        "celery_broker_url": broker,
        "celery_task_always_eager": False,
        "data_dir": data_dir,
        "database_url": None,
        "upload_folder": None,
        "results_folder": None,
        "whisper_model_path": "base",
        "whisper_device": "cpu",
        "log_level": "INFO",
        "rate_limit_results": "1000/minute",
        "rate_limit_upload": "100/minute",
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)


@dataclass
class Api:
    """The API in this process (``create_app``), a user and its key."""

    app: Any
    client: Any
    key: str

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx

    @property
    def celery(self) -> Any:
        """The API's job queue (its own Celery app): pings, sends, and eager runs in its context."""
        return self.app.state.celery

    def task(self, name: str) -> Any:
        return self.celery.tasks[f"proxyai.{name}"]

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def upload(self, path: Path, **fields: str) -> tuple[str, str]:
        """Upload a file; returns (upload_id, correlation_id)."""
        with open(path, "rb") as fh:
            response = self.client.post(
                "/upload/", files={"file": (path.name, fh, "audio/wav")}, data=fields, headers=self.headers
            )
        assert response.status_code == 200, response.text
        return response.json()["upload_id"], response.headers["X-Correlation-ID"]

    def status(self, upload_id: str) -> dict[str, Any]:
        response = self.client.get(f"/status/{upload_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_finished(self, upload_id: str, timeout: float, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Poll the status until done or failed; every status read is appended to ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(upload_id)
            if seen is not None:
                seen.append(status)
            if status["status"] in ("done", "failed"):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"job {upload_id} not finished after {timeout:.0f} s: {status}")
            time.sleep(0.2)


def make_api(settings: Any) -> Api:
    from fastapi.testclient import TestClient

    from proxyai.api.app import create_app

    app = create_app(settings)
    _, key = app.state.ctx.store.create_user("t")
    return Api(app, TestClient(app), key)


def concat_wav(sources: list[Path], target: Path) -> float:
    """Join 16 kHz mono 16-bit WAV files (with 0.5 s of silence between) into ``target``; its seconds."""
    import wave

    import numpy as np

    parts = []
    for src in sources:
        with wave.open(str(src), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), src
            parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16))
            parts.append(np.zeros(8000, dtype=np.int16))
    samples = np.concatenate(parts)
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return len(samples) / 16000


# --- worker processes ------------------------------------------------------------------------------


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def celery_line_time(line: str) -> float | None:
    """The time of a plain Celery log line ``[2026-01-01 10:00:00,123: INFO/MainProcess] …`` (local time)."""
    if not line.startswith("[") or ": " not in line:
        return None
    try:
        return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
    except ValueError:
        return None


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path
    queues: str
    name: str
    started: float = field(default_factory=time.time)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines (the child processes' structlog and stdlib logs)."""
        out = []
        for line in self.lines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def events(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == event and all(r.get(k) == v for k, v in match.items())]

    def received(self, task: str) -> list[float]:
        """When the main process logged "Task proxyai.<task>[…] received" (a JSON line, or Celery's
        own format before logging is set up)."""
        times = []
        for line in self.lines():
            if f"Task proxyai.{task}[" not in line or "received" not in line:
                continue
            if line.startswith("{"):
                record = json.loads(line)
                if str(record.get("event", "")).endswith("received"):
                    times.append(parse_time(record["timestamp"]))
            elif line.rstrip().endswith("received") and (t := celery_line_time(line)) is not None:
                times.append(t)
        return times

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group (the main process and its pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self.kill(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if not self.alive():
                raise AssertionError(
                    f"worker {self.name} exited ({self.proc.returncode}) while waiting for {what}:\n" + self.tail()
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name}: no {what} after {timeout:.0f} s:\n" + self.tail())
            time.sleep(0.2)

    def wait_event(self, event: str, timeout: float, **match: Any) -> dict[str, Any]:
        found = self.wait_for(lambda: self.events(event, **match), timeout, f"log event {event!r} {match}")
        return dict(found[0])

    def wait_ping(self, celery_app: Any, timeout: float = 60) -> None:
        def answered() -> bool:
            replies = celery_app.control.ping(destination=[self.name], timeout=0.5) or []
            return any(self.name in reply for reply in replies)

        self.wait_for(answered, timeout, "ping answer")

    def tail(self, n: int = 40) -> str:
        return "\n".join(line[:400] for line in self.lines()[-n:])


def worker_env(data_dir: Path, **values: Any) -> dict[str, str]:
    """The environment of a worker process: no inherited proxyai setting, the given ones as env vars."""
    from proxyai.config import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "PROXYAI_"))}
    for name in Settings.model_fields:
        env.pop(name.upper(), None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    settings = {
        "CELERY_BROKER_URL": REDIS_URL,
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "INFO",
        "WARMUP": "true",
        "WHISPER_MODEL_PATH": "base",
        "WHISPER_DEVICE": "cpu",
        "CELERY_VISIBILITY_TIMEOUT": "3600",
        "WORKER_METRICS_PORT": "0",  # none unless a test asks: workers of parallel tests would share a port
    }
    settings.update({k.upper(): str(v) for k, v in values.items()})
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def launch_worker(
    data_dir: Path,
    log_dir: Path,
    queues: str,
    label: str,
    concurrency: int = 1,
    pool: str = "prefork",
    beat: bool = False,
    slow_stage: str | None = None,
    **env_values: Any,
) -> Worker:
    """Start ``proxyai worker`` as a subprocess in a new session (its own process group). ``slow_stage``
    (``<stage>:<seconds>``): a test stub makes that stage of every job sleep first (``slow_stage/``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_env(data_dir, **env_values)
    if slow_stage:
        stub = str(Path(__file__).parent / "slow_stage")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [stub, env.get("PYTHONPATH")]))
        env["PROXYAI_TEST_SLOW_STAGE"] = slow_stage
    log = log_dir / f"worker-{label}.log"
    out = open(log, "wb")  # noqa: SIM115 - the child holds it; closed after the fork below
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxyai.cli",
                "worker",
                "--queues",
                queues,
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                *(["--beat"] if beat else []),
            ],
            env=env,
            cwd=data_dir,  # no .env from the repository
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        out.close()
    # the name ``proxyai worker`` gives itself (service.worker_argv): pid of the process, %h = host name
    name = f"proxyai-{queues.replace(',', '-')}-{proc.pid}@{socket.gethostname()}"
    return Worker(proc, log, queues, name)


def migrate(settings: Any) -> None:
    """Create the database before the workers start (see test_concurrent_first_start for why)."""
    from proxyai.context import make_context

    make_context(settings).store.engine.dispose()


PART_EVENTS = {"asr": "recognition saved", "diarization": "diarization saved"}


# what a finished job's folder holds: both parts, the result, the speech map (the samples are dropped)
DONE_FILES = ["asr.json", "diarization.json", "prepared/speech.json", "result.json"]


def job_files(folder: Path) -> list[str]:
    """Every file under a job's results folder, relative to it (temporary files included)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def saved(worker: Worker, part: str, **match: Any) -> list[dict[str, Any]]:
    """The log lines saying that ``part`` (asr or diarization) was written."""
    return worker.events("part saved", part=part, **match) + worker.events(PART_EVENTS[part], **match)
