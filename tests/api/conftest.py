"""Fixtures for the HTTP API tests: real settings, real SQLite and PostgreSQL, real models (eager Celery).

``database`` is parametrized over SQLite and PostgreSQL; tests that use ``make_api`` / ``api`` / ``done``
run once per database. ``make_sqlite_api`` is for cheap checks that need no second run.

With ``CELERY_TASK_ALWAYS_EAGER`` an upload runs the whole pipeline inside the request, so a successful
upload returns once its job is done. The finished job of ``dialogue_2spk.wav`` is made once per database
(``done``) and shared by every test that only reads it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from api_helpers import DIALOGUE, SHORT_STEREO, ApiClient, Database, DoneJob, build_api, close_api
from sqlalchemy import delete

from proxyai.config import Settings
from proxyai.store.db import Label

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test connect_timeout=3"
REDIS_PORT = 6379

# --- environment -----------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def clean_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No setting leaks in from the caller's environment or a ``.env`` in the caller's folder."""
    mp = pytest.MonkeyPatch()
    for name in Settings.model_fields:
        mp.delenv(name.upper(), raising=False)
        mp.delenv(name, raising=False)
    mp.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    mp.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    mp.undo()


# --- PostgreSQL ------------------------------------------------------------------------------------


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def pg_server() -> None:
    """PostgreSQL at 127.0.0.1:5432 (trust auth); started with ``pg_ctlcluster`` when it is down."""
    if _pg_reachable():
        return
    subprocess.run(
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        shell=True,
        check=False,
        capture_output=True,
    )
    deadline = time.monotonic() + 30
    while not _pg_reachable():
        if time.monotonic() > deadline:
            pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable and could not be started")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def pg_url(pg_server: None) -> Iterator[str]:
    """A fresh database for this test session; dropped at the end."""
    name = f"proxyai_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Database:
    if request.param == "postgresql":
        return Database("postgresql", request.getfixturevalue("pg_url"))
    return Database("sqlite", None)


# --- Redis -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(redis_base: str) -> str:
    """Redis at 127.0.0.1:6379 (see ``redis_base`` in tests/conftest.py); its URL without a database."""
    return redis_base


# --- the API ---------------------------------------------------------------------------------------


@contextmanager
def _api_factory(folder: Path, database_url: str | None) -> Iterator[Callable[..., ApiClient]]:
    """Make APIs on ``database_url`` (None: a fresh SQLite each), closing them all at the end."""
    made: list[ApiClient] = []

    def make(**overrides: Any) -> ApiClient:
        client = build_api(folder / f"data{len(made)}", database_url, **overrides)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            close_api(client)


@pytest.fixture
def make_api(database: Database, tmp_path: Path) -> Iterator[Callable[..., ApiClient]]:
    """Factory: an API on this test's database (SQLite fresh per app; the session's PostgreSQL database)."""
    with _api_factory(tmp_path, database.url) as make:
        yield make


@pytest.fixture
def make_sqlite_api(tmp_path: Path) -> Iterator[Callable[..., ApiClient]]:
    """Factory: an API on a fresh SQLite database (for checks that need not run per database)."""
    with _api_factory(tmp_path, None) as make:
        yield make


@pytest.fixture
def api(make_api: Callable[..., ApiClient]) -> ApiClient:
    return make_api()


@pytest.fixture
def sqlite_api(make_sqlite_api: Callable[..., ApiClient]) -> ApiClient:
    return make_sqlite_api()


# --- the shared finished job -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def _done_job(database: Database, shared_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoneJob]:
    client = build_api(tmp_path_factory.mktemp(f"done-{database.kind}"), database.url)
    owner, other = client.new_user("alice"), client.new_user("bob")
    audio = (shared_audio / DIALOGUE).read_bytes()
    correlation_id = f"corr-{uuid.uuid4().hex[:8]}"
    response = client.upload(owner, audio, DIALOGUE, headers={"X-Correlation-ID": correlation_id})
    assert response.status_code == 200, response.text
    yield DoneJob(client, database, owner, other, response.json()["upload_id"], audio, response, correlation_id)
    close_api(client)


@pytest.fixture
def done(_done_job: DoneJob) -> Iterator[DoneJob]:
    """The finished job of ``dialogue_2spk.wav`` (one per database), with no speaker names set."""

    def clear_labels() -> None:
        with _done_job.api.ctx.store.session() as s:
            s.execute(delete(Label).where(Label.job_id == _done_job.upload_id))

    clear_labels()
    yield _done_job
    clear_labels()


@pytest.fixture(scope="session")
def short_stereo(shared_audio: Path) -> bytes:
    return (shared_audio / SHORT_STEREO).read_bytes()
