"""Rate limits per client address: in memory, and in Redis shared by several API processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from api_helpers import ApiClient, assert_error

REDIS_DB = 14


def _assert_429(response: object) -> None:
    body = assert_error(response, 429, mentions="too many requests")  # type: ignore[arg-type]
    retry = response.headers["retry-after"]  # type: ignore[attr-defined]
    assert retry.isdigit() and 1 <= int(retry) <= 60, retry
    assert body["detail"]


def test_third_upload_in_a_minute_is_429_even_after_refusals(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(rate_limit_upload="2/minute")
    key = api.new_user()
    for _ in range(2):
        assert_error(api.upload(key, b"not audio at all", "x.wav"), 415)
    _assert_429(api.upload(key, b"not audio at all", "x.wav"))
    # /transcribe shares the upload limit
    _assert_429(api.upload(key, b"not audio at all", "x.wav", path="/transcribe"))
    assert api.uploads_folder_files() == []
    # other endpoints are not limited by it
    assert api.get("/jobs", headers={"X-API-Key": key}).status_code == 200


def test_fourth_health_check_in_a_minute_is_429(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(rate_limit_health="3/minute")
    for _ in range(3):
        assert api.get("/health").status_code == 200
    _assert_429(api.get("/health"))


def test_results_are_limited(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(rate_limit_results="2/minute")
    key = api.new_user()
    for _ in range(2):
        assert_error(api.get("/results/unknown", headers={"X-API-Key": key}), 404)
    _assert_429(api.get("/results/unknown", headers={"X-API-Key": key}))
    # the status endpoint is not
    assert_error(api.get("/status/unknown", headers={"X-API-Key": key}), 404)


def test_limits_are_per_app_in_memory(make_sqlite_api: Callable[..., ApiClient]) -> None:
    first = make_sqlite_api(rate_limit_health="2/minute")
    second = make_sqlite_api(rate_limit_health="2/minute")
    for _ in range(2):
        assert first.get("/health").status_code == 200
    _assert_429(first.get("/health"))
    assert second.get("/health").status_code == 200


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    url = f"{redis_server}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def test_redis_counts_are_shared_by_two_api_processes(
    make_sqlite_api: Callable[..., ApiClient], redis_url: str
) -> None:
    one = make_sqlite_api(rate_limit_health="3/minute", rate_limit_storage_url=redis_url)
    two = make_sqlite_api(rate_limit_health="3/minute", rate_limit_storage_url=redis_url)
    assert one.get("/health").status_code == 200
    assert one.get("/health").status_code == 200
    assert two.get("/health").status_code == 200
    _assert_429(two.get("/health"))
    _assert_429(one.get("/health"))
    # the counters are in Redis
    assert redis.Redis.from_url(redis_url).dbsize() > 0


def test_requests_without_a_valid_key_use_no_allowance(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(rate_limit_results="2/minute")
    key = api.new_user()
    for _ in range(5):
        assert_error(api.get("/results/unknown", headers={"X-API-Key": "not-a-key"}), 401)
    for _ in range(2):
        assert_error(api.get("/results/unknown", headers={"X-API-Key": key}), 404)
    _assert_429(api.get("/results/unknown", headers={"X-API-Key": key}))


def test_one_key_is_limited_across_addresses(make_sqlite_api: Callable[..., ApiClient]) -> None:
    """Spreading a key's requests over addresses does not multiply its allowance; another key from the
    second address still has its own."""
    from fastapi.testclient import TestClient

    api = make_sqlite_api(rate_limit_results="2/minute")
    key, other = api.new_user("a"), api.new_user("b")
    second_address = TestClient(api.app, client=("198.51.100.7", 50000))
    try:
        for _ in range(2):
            assert_error(api.get("/results/unknown", headers={"X-API-Key": key}), 404)
        _assert_429(second_address.get("/results/unknown", headers={"X-API-Key": key}))
        assert_error(second_address.get("/results/unknown", headers={"X-API-Key": other}), 404)
    finally:
        second_address.close()
