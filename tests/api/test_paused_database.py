"""A database that hangs (PostgreSQL stopped with SIGSTOP: it accepts connections and answers nothing)
holds up only the requests that need it: a real ``proxyai api`` keeps answering ``/health`` (503, naming the
database, within a second) and the page, and the held request completes once the database resumes. Its own
PostgreSQL instance, made here with initdb (run as the ``postgres`` user: the tests run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from process_helpers import free_port, start_api, stop_group


def _as_postgres(*argv: str) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, int]]:
    """A PostgreSQL instance of this test: (its URL, its postmaster's pid)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if os.geteuid() != 0 or not bins or not shutil.which("runuser"):
        pytest.skip("needs root and Debian's PostgreSQL binaries to make an instance of its own")
    folder = Path(tempfile.mkdtemp(prefix="proxyai-pg-"))  # outside pytest's folder, which is root's only
    shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    done = _as_postgres(f"{bins[-1]}/initdb", "-D", str(folder), "-A", "trust", "-U", "postgres")
    assert done.returncode == 0, done.stderr
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(folder / "server.log")  # the server's output to a file: it would hold our pipes open
    done = _as_postgres(f"{bins[-1]}/pg_ctl", "-D", str(folder), "-o", options, "-l", log, "-w", "start")
    assert done.returncode == 0, done.stderr
    pid = int((folder / "postmaster.pid").read_text().split()[0])
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pid
    finally:
        _signal_tree(pid, signal.SIGCONT)
        _as_postgres(f"{bins[-1]}/pg_ctl", "-D", str(folder), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _signal_tree(pid: int, signum: int) -> None:
    """``signum`` to the postmaster and every backend it forked."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    for target in pids:
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            continue


def test_a_paused_database_does_not_freeze_the_api(tmp_path: Path, own_postgres: tuple[str, int]) -> None:
    url, postmaster = own_postgres
    from proxyai.config import load_settings
    from proxyai.context import make_context

    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)
    ctx = make_context(settings)
    _, key = ctx.store.create_user("t")
    ctx.store.engine.dispose()
    api, base = start_api(tmp_path, DATABASE_URL=url, RATE_LIMIT_HEALTH="1000/minute")
    held: list[httpx.Response] = []
    try:
        assert httpx.get(f"{base}/jobs", headers={"X-API-Key": key}, timeout=10).status_code == 200

        _signal_tree(postmaster, signal.SIGSTOP)
        request = threading.Thread(
            target=lambda: held.append(httpx.get(f"{base}/jobs", headers={"X-API-Key": key}, timeout=120)),
            daemon=True,
        )
        request.start()
        time.sleep(1.0)  # the request is now waiting on the database
        for _ in range(3):
            started = time.monotonic()
            health = httpx.get(f"{base}/health", timeout=10)
            took = time.monotonic() - started
            assert health.status_code == 503 and "database" in health.json()["failing"], health.text
            assert took < 1.0, f"/health took {took:.2f} s with the database paused"
        started = time.monotonic()
        assert httpx.get(f"{base}/", timeout=10).status_code == 200
        assert time.monotonic() - started < 1.0
        assert not held, "the request that needs the database cannot have been answered"

        _signal_tree(postmaster, signal.SIGCONT)
        request.join(timeout=60)
        assert held and held[0].status_code == 200, held
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    finally:
        _signal_tree(postmaster, signal.SIGCONT)
        stop_group(api)
