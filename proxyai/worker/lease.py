"""A lease on a part of a job, renewed by a thread while the part runs.

A worker that dies (SIGKILL, out of memory, a lost machine) stops renewing; the reaper
(:func:`proxyai.worker.tasks.reap_expired`, every ``LEASE_SECONDS`` from beat and once when a worker
starts) sends the part again. A task that finds its part leased by a live holder leaves it alone, so a
message the broker hands out twice never runs the part twice at once.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from proxyai.observability import get_logger
from proxyai.store.db import Store

log = get_logger("proxyai.worker")


def holder(task_id: str | None) -> str:
    """Who holds a lease: this host, this process, this task."""
    return f"{socket.gethostname()}:{os.getpid()}:{task_id or '-'}"[:200]


@contextmanager
def leased(store: Store, job_id: str, part: str, task_id: str | None, ttl: float) -> Iterator[bool]:
    """Hold the lease on ``part`` for the block (yields False, running nothing, when another live task
    holds it or the job is finished or gone); renewed every ``ttl / 6`` seconds, released at the end."""
    me = holder(task_id)
    if not store.acquire_lease(job_id, part, me, ttl, ticket=task_id):
        yield False
        return
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 6):
            try:
                if not store.renew_lease(job_id, part, me, ttl):
                    log.warning("lease lost: another task took the part over", part=part)
                    return
            except Exception as exc:  # a database hiccup: try again at the next beat of the loop
                log.warning("lease not renewed", part=part, error=f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=renew, name=f"lease-{job_id[:8]}-{part}", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
        try:
            store.release_lease(job_id, part, me)
        except Exception as exc:  # it expires by itself
            log.warning("lease not released", part=part, error=f"{type(exc).__name__}: {exc}")
