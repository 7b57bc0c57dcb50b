"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = (REPO_ROOT / ".." / "shared" / "audio").resolve()


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """The reference recordings in ``../shared/audio`` (skips when the folder is missing)."""
    if not SHARED_AUDIO.is_dir():
        pytest.skip(f"reference audio not found at {SHARED_AUDIO}")
    return SHARED_AUDIO


REDIS_PORT = 6379


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@pytest.fixture(scope="session")
def redis_base() -> str:
    """Redis at 127.0.0.1:6379, started (without persistence) when it is down; its URL without a database."""
    if not port_open(REDIS_PORT):
        if shutil.which("redis-server") is None:
            pytest.fail("Redis is not running at 127.0.0.1:6379 and redis-server is not installed")
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
            check=False,
            capture_output=True,
        )
        deadline = time.monotonic() + 20
        while not port_open(REDIS_PORT):
            if time.monotonic() > deadline:
                pytest.fail("Redis at 127.0.0.1:6379 is not reachable and could not be started")
            time.sleep(0.2)
    return f"redis://127.0.0.1:{REDIS_PORT}"
