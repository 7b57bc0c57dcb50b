"""Starting workers: ready means warm; several at once on a new data directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from worker_helpers import BOTH_QUEUES, make_api, make_settings, migrate, parse_time


def test_a_worker_that_answers_ping_is_warm_before_it_takes_a_task(tmp_path: Path, redis_db: Any, workers: Any) -> None:
    """A worker that says it is ready (log "ready.", answers ping: what a deployment's health check
    sees) and is sent a task at once: its log shows "models warm" before it receives the task."""
    data = tmp_path / "data"
    settings = make_settings(data)
    migrate(settings)
    worker = workers(data, BOTH_QUEUES, "warm")
    api = make_api(settings)

    worker.wait_ping(api.celery, timeout=60)
    assert "ready." in worker.text()
    api.task("cleanup_old_files").delay()
    worker.wait_event("cleanup done", timeout=90)
    warm = worker.events("models warm")
    assert len(warm) == 1 and warm[0]["queues"] == ["preprocess_cpu", "preprocess_gpu"], worker.tail()
    warm_at = parse_time(warm[0]["timestamp"])
    assert warm_at <= parse_time(worker.events("cleanup done")[0]["timestamp"])
    received = worker.received("cleanup_old_files")
    assert received, worker.tail()
    assert warm_at <= received[0], (
        f"the worker received its first task {warm_at - received[0]:.2f} s before its models were warm:\n"
        + worker.tail(12)
    )


def test_workers_started_at_once_on_a_new_data_dir_all_come_up(tmp_path: Path, redis_db: Any, workers: Any) -> None:
    """Several workers (as docker compose starts them) on a database that does not exist yet: each one
    creates the schema at start, none may crash doing so."""
    data = tmp_path / "fresh"
    data.mkdir()
    started = [
        workers(data, queue, f"start-{i}", warmup="false")
        for i, queue in enumerate(["preprocess_cpu", "preprocess_gpu"] * 3)
    ]
    api = make_api(make_settings(tmp_path / "api"))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(w.alive() and "ready." not in w.text() for w in started):
        time.sleep(0.2)
    crashed = [w for w in started if not w.alive()]
    assert not crashed, "\n\n".join(f"{w.name} exited {w.proc.returncode}:\n{w.tail(12)}" for w in crashed)
    for w in started:
        w.wait_ping(api.celery, timeout=30)
