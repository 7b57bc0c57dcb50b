"""A rate-limit counter store (Redis) that hangs delays a request by at most the counter's timeout and
never stops the event loop: a real ``proxyai api`` counting in a Redis of this test's own, paused with
SIGSTOP."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from process_helpers import free_port, start_api, stop_group, wait_for

from proxyai.api.deps import COUNTER_TIMEOUT_S


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server to run a Redis of its own")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        assert wait_for(lambda: _pings(url), 20), "redis-server did not start"
        yield url, server
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait(timeout=30)


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def test_a_paused_counter_store_delays_requests_by_its_timeout_only(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, server = own_redis
    api, base = start_api(tmp_path, RATE_LIMIT_STORAGE_URL=url, RATE_LIMIT_HEALTH="2/minute")
    try:
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200  # the second of two
        assert httpx.get(f"{base}/health", timeout=5).status_code == 429  # counted in Redis
        assert redis.Redis.from_url(url).dbsize() > 0

        server.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:  # at once: one request's wait must not hold up the others
            answers = list(pool.map(lambda _: httpx.get(f"{base}/health", timeout=30), range(8)))
        took = time.monotonic() - started
        # the counter cannot be read: served (and logged) rather than refused or held
        assert [a.status_code for a in answers] == [200] * 8
        assert took < 4 * COUNTER_TIMEOUT_S + 1.0, f"8 requests at once took {took:.2f} s with Redis paused"
        started = time.monotonic()
        assert httpx.get(f"{base}/", timeout=10).status_code == 200  # no counter: not delayed at all
        assert time.monotonic() - started < COUNTER_TIMEOUT_S

        server.send_signal(signal.SIGCONT)
        assert wait_for(lambda: httpx.get(f"{base}/health", timeout=5).status_code == 429, 10)
    finally:
        server.send_signal(signal.SIGCONT)
        stop_group(api)
