"""Start ``proxyai serve`` (the embedded default: API + worker, no other server) for a test module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(folder: Path, **settings: str) -> Iterator[tuple[str, str, Path]]:
    """Yield (base URL, the local API key, folder); the server's output goes to ``folder/serve.log``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "PROMETHEUS"))}
    env.update(DATA_DIR=str(folder / "data"), LOG_LEVEL="INFO", **settings)
    with open(folder / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxyai.cli", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("proxyai serve did not start:\n" + (folder / "serve.log").read_text()[-3000:])
                time.sleep(0.5)
            key = (folder / "data" / "local-api-key").read_text().strip()
            yield base, key, folder
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
