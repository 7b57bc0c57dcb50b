"""Helpers for the tests that start the service's processes: find them by their data folder, wait."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path


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
