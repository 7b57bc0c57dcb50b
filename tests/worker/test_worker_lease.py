"""Leases on a job's parts: one live holder at a time, taken over once expired, handed by the reaper to
the task it sends, renewed while a part runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from proxyai.store.db import Store
from proxyai.worker.lease import holder, leased


def _store(tmp_path: Path) -> tuple[Store, str]:
    store = Store(f"sqlite:///{tmp_path / 'jobs.db'}")
    store.migrate()
    job = store.create_job(None, "a.wav", 10, 60.0, {}, "cid")
    return store, job.id


def test_one_live_holder_at_a_time(tmp_path: Path) -> None:
    store, job = _store(tmp_path)
    assert store.acquire_lease(job, "asr", "a", ttl=30)
    assert not store.acquire_lease(job, "asr", "b", ttl=30)  # live: b leaves the part alone
    assert store.acquire_lease(job, "asr", "a", ttl=30)  # the same holder again (a redelivery to it)
    assert store.acquire_lease(job, "diarization", "b", ttl=30)  # another part is another lease
    assert store.expired_leases() == []
    store.release_lease(job, "asr", "b")  # not b's: nothing happens
    assert not store.acquire_lease(job, "asr", "b", ttl=30)
    store.release_lease(job, "asr", "a")
    assert store.acquire_lease(job, "asr", "b", ttl=30)


def test_an_expired_lease_is_reaped_once_and_goes_to_the_task_sent(tmp_path: Path) -> None:
    store, job = _store(tmp_path)
    assert store.acquire_lease(job, "asr", "dead-worker", ttl=0.2)
    time.sleep(0.3)
    assert [(j.id, part) for j, part in store.expired_leases()] == [(job, "asr")]
    assert not store.renew_lease(job, "asr", "someone-else", ttl=30)

    assert store.requeue_lease(job, "asr", "ticket-1", until=time.time() + 60)
    assert not store.requeue_lease(job, "asr", "ticket-2", until=time.time() + 60)  # a second reaper: no
    assert store.expired_leases() == []
    assert not store.acquire_lease(job, "asr", "host:1:other-task", ttl=30, ticket="other-task")
    assert store.acquire_lease(job, "asr", "host:2:ticket-1", ttl=30, ticket="ticket-1")
    # the dead worker, had it only stalled, has lost the part
    assert not store.renew_lease(job, "asr", "dead-worker", ttl=30)


def test_no_lease_on_a_finished_or_deleted_job(tmp_path: Path) -> None:
    store, job = _store(tmp_path)
    store.finish_job(job, 60.0)
    assert not store.acquire_lease(job, "asr", "a", ttl=30)
    other = store.create_job(None, "b.wav", 10, 60.0, {}, None).id
    assert store.acquire_lease(other, "asr", "a", ttl=0.1)
    store.delete_job(other)
    time.sleep(0.2)
    assert store.expired_leases() == []
    assert not store.acquire_lease(other, "asr", "a", ttl=30)


def test_leased_renews_while_the_block_runs_and_releases_after(tmp_path: Path) -> None:
    store, job = _store(tmp_path)
    with leased(store, job, "asr", "task-1", ttl=0.6) as held:
        assert held
        time.sleep(1.5)  # longer than the lease: only renewal keeps it
        assert store.expired_leases() == []
        with leased(store, job, "asr", "task-2", ttl=0.6) as second:
            assert not second
    assert store.acquire_lease(job, "asr", holder("task-3"), ttl=30)  # released


def test_two_tasks_racing_for_an_expired_lease_get_it_once(tmp_path: Path) -> None:
    store, job = _store(tmp_path)
    assert store.acquire_lease(job, "asr", "dead", ttl=0.1)
    time.sleep(0.2)
    wins: list[str] = []
    barrier = threading.Barrier(4)

    def take(name: str) -> None:
        barrier.wait()
        try:
            if store.acquire_lease(job, "asr", name, ttl=30):
                wins.append(name)
        except Exception:  # SQLite: a writer that loses the race may be told the database is busy
            pass

    threads = [threading.Thread(target=take, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1, wins


def test_the_lease_of_a_process_that_died_on_this_machine_is_taken_over_at_once(tmp_path: Path) -> None:
    """A pool process killed out of memory: the process that gets its message again takes the part over
    without waiting for the lease to expire; a live process's lease, or another machine's, it leaves."""
    import subprocess
    import sys

    from proxyai.worker.lease import dead_here

    store, job = _store(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    me = holder("t1")
    machine = me.split(":", 1)[0]
    dead, other_machine = f"{machine}:{gone.pid}:t0", f"elsewhere/1:{gone.pid}:t0"
    assert dead_here(dead) and not dead_here(other_machine) and not dead_here(me) and not dead_here(None)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as alive:
        try:
            assert not dead_here(f"{machine}:{alive.pid}:t0")
        finally:
            alive.kill()

    assert store.acquire_lease(job, "asr", other_machine, ttl=60)
    with leased(store, job, "asr", "t1", ttl=60) as held:
        assert not held  # another machine's live lease
    store.release_lease(job, "asr", other_machine)
    assert store.acquire_lease(job, "asr", dead, ttl=60)
    with leased(store, job, "asr", "t1", ttl=60) as held:
        assert held
        assert store.lease_holder(job, "asr") == me
