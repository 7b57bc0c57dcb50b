"""Start ``proxyai serve`` (the embedded default: API + worker, no other server) for a test module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from process_helpers import free_port, stop_group


def start(folder: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``proxyai serve`` in its own session and wait until it answers; its stdout goes to
    ``folder/serve.out`` (JSON lines), its stderr to ``folder/serve.log``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "PROMETHEUS"))}
    env.update(DATA_DIR=str(folder / "data"), LOG_LEVEL="INFO", **settings)
    with open(folder / "serve.out", "ab") as out, open(folder / "serve.log", "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxyai.cli", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("proxyai serve did not start:\n" + (folder / "serve.log").read_text()[-3000:])
        time.sleep(0.5)


@contextmanager
def serve(folder: Path, **settings: str) -> Iterator[tuple[str, str, Path]]:
    """Yield (base URL, the local API key, folder) of a running ``proxyai serve`` (see :func:`start`)."""
    proc, base = start(folder, **settings)
    try:
        key = (folder / "data" / "local-api-key").read_text().strip()
        yield base, key, folder
    finally:
        stop_group(proc)


def json_lines(folder: Path) -> list[dict[str, object]]:
    """Every line the service wrote to stdout, each required to be one JSON object."""
    lines = (folder / "serve.out").read_text().splitlines()
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"stdout line {number} is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict), line[:300]
        parsed.append(record)
    return parsed
