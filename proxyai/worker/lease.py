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


def _machine() -> str:
    """This host and its process-id namespace (containers on one host can share a host name)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/{namespace}"


def holder(task_id: str | None) -> str:
    """Who holds a lease: this host, this process, this task."""
    return f"{_machine()}:{os.getpid()}:{task_id or '-'}"[:200]


def dead_here(lease_holder: str | None) -> bool:
    """Whether ``lease_holder`` was a process on this machine that no longer runs (a pool process the
    out-of-memory killer took, say): its lease can be taken over at once instead of after it expires."""
    if not lease_holder:
        return False
    machine, _, rest = lease_holder.partition(":")
    pid = rest.partition(":")[0]
    if machine != _machine() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def leased(store: Store, job_id: str, part: str, task_id: str | None, ttl: float) -> Iterator[bool]:
    """Hold the lease on ``part`` for the block (yields False, running nothing, when another live task
    holds it or the job is finished or gone); renewed every ``ttl / 6`` seconds, released at the end."""
    me = holder(task_id)
    current = store.lease_holder(job_id, part)
    dead = current if dead_here(current) else None
    if not store.acquire_lease(job_id, part, me, ttl, ticket=task_id, dead=dead):
        yield False
        return
    if dead:
        log.warning("took over the part of a process that died on this machine", part=part, dead=dead)
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
