"""What an idle worker holds beyond its models: glibc's heap, handed back after each task and kept to
few arenas. (The figures: ``tests/e2e/test_serve.py`` and the README's memory section.)"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
ARENAS = 2


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None  # glibc's, or none


def limit_arenas(arenas: int = ARENAS) -> None:
    """At most ``arenas`` malloc arenas for the process's threads (glibc makes up to eight per core,
    each keeping its own free pages: ~70 MB more in an idle worker after a burst of jobs). Call before
    threads start; ``MALLOC_ARENA_MAX`` in the environment wins."""
    libc = _libc()
    if libc is not None and not os.environ.get("MALLOC_ARENA_MAX"):
        libc.mallopt(M_ARENA_MAX, arenas)


def release_memory() -> None:
    """Hand the heap's free pages back to the system (after a task: glibc keeps them otherwise, ~75 MB
    after one job)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
