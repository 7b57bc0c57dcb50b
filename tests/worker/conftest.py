"""Fixtures for the worker tests: a real Redis, real Celery worker processes (see ``worker_helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import REDIS_URL, Worker, launch_worker


@pytest.fixture(scope="session")
def redis_server(redis_base: str) -> str:
    """The tests' own database on the Redis of ``tests/conftest.py`` (started there when it is down)."""
    assert REDIS_URL.startswith(redis_base + "/"), (REDIS_URL, redis_base)
    return REDIS_URL


@pytest.fixture(scope="module")
def redis_db(redis_server: str) -> Any:
    """The tests' Redis database, empty at the start of each test module."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def dialogue_wav(shared_audio: Path) -> Path:
    return shared_audio / "dialogue_2spk.wav"


@pytest.fixture
def workers(tmp_path: Path, redis_db: Any) -> Iterator[Callable[..., Worker]]:
    """A factory for worker processes, every one of them killed (whole process group) at teardown; the
    Redis database is emptied first, so that no message of an earlier test reaches them."""
    redis_db.flushdb()
    stack = ExitStack()
    started: list[Worker] = []

    def start(data_dir: Path, queues: str, label: str, **kwargs: Any) -> Worker:
        worker = launch_worker(data_dir, tmp_path / "logs", queues, label, **kwargs)
        started.append(worker)
        stack.callback(worker.stop)
        return worker

    with stack:
        yield start
    for worker in started:
        if worker.log.exists():
            # kept for a failing test's report
            print(f"--- {worker.name} ({worker.log})\n{worker.tail(15)}")
