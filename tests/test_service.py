"""The service's processes from the command line: the Celery exporter, user creation, bad settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "PROMETHEUS"))}
    env.update(DATA_DIR=str(tmp_path / "data"), WARMUP="false", **extra)
    return env


def _cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxyai.cli", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_admin_create_user_prints_a_key_that_is_stored_hashed(tmp_path: Path) -> None:
    done = _cli(tmp_path, "admin", "create-user", "alice")
    assert done.returncode == 0, done.stderr
    key = done.stdout.split("api key:")[1].split()[0]
    from proxyai.config import load_settings
    from proxyai.context import make_context

    store = make_context(load_settings(data_dir=tmp_path / "data")).store
    user = store.user_by_key(key)
    assert user is not None and user.name == "alice"
    assert key not in (tmp_path / "data" / "proxyai.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    ("key", "value"), [("VAD_LEVEL", "9"), ("MAX_FILE_SIZE", "lots"), ("CELERY_VISIBILITY_TIMEOUT", "-1")]
)
def test_a_bad_setting_stops_start_up_naming_the_key(tmp_path: Path, key: str, value: str) -> None:
    done = _cli(tmp_path, "serve", "--port", "1", **{key: value})
    assert done.returncode == 2
    assert done.stderr.startswith("proxyai: error: invalid setting") and key in done.stderr
    assert "Traceback" not in done.stderr


def test_celery_exporter_serves_queue_lengths_and_workers(tmp_path: Path, redis_base: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = f"{redis_base}/12"
    import redis

    redis.Redis.from_url(broker).flushdb()
    from kombu import Connection

    # a message waiting in the CPU queue
    with Connection(broker) as conn:
        queue = conn.SimpleQueue("preprocess_cpu")
        queue.put({"hello": "world"})
        queue.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxyai.cli", "metrics", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, CELERY_BROKER_URL=broker),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                if 'celery_queue_length{queue="preprocess_cpu"} 1.0' in text:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert 'celery_queue_length{queue="preprocess_cpu"} 1.0' in text, text[-2000:]
        assert 'celery_queue_length{queue="preprocess_gpu"} 0.0' in text
        assert "celery_workers_up 0.0" in text
        assert "celery_task_runtime_seconds" in text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_the_local_key_is_created_private_and_returned_only_once(tmp_path: Path) -> None:
    """``serve`` shows the key only when it creates it; the key file is never readable by others, not even
    between its creation and a chmod; the databases are the owner's only too."""
    from proxyai.config import load_settings
    from proxyai.service import local_key

    settings = load_settings(_env_file=None, data_dir=tmp_path / "data", warmup=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "local-api-key").write_text("a key of an earlier database\n")
    key, path = local_key(settings)
    assert key and path.read_text() == key + "\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "data" / "proxyai.db").stat().st_mode & 0o777) == "0o600"
    from proxyai.context import make_context

    assert make_context(settings).store.user_by_key(key) is not None
    again, same = local_key(settings)
    assert again is None and same == path and path.read_text() == key + "\n"


def test_databases_made_world_readable_are_made_private_again(tmp_path: Path) -> None:
    from proxyai.config import load_settings
    from proxyai.context import make_context
    from proxyai.worker.app import make_celery

    data = tmp_path / "data"
    data.mkdir()
    for name in ("proxyai.db", "broker.db"):
        (data / name).touch(mode=0o644)
        (data / name).chmod(0o644)
    settings = load_settings(_env_file=None, data_dir=data, warmup=False)
    ctx = make_context(settings)
    make_celery(settings, ctx, set_as_current=False).close()
    for name in ("proxyai.db", "broker.db"):
        assert oct((data / name).stat().st_mode & 0o777) == "0o600", name
    ctx.store.engine.dispose()


@pytest.mark.parametrize("trusted", [False, True], ids=["default", "proxy-trusted"])
def test_forwarded_addresses_are_believed_only_from_trusted_proxies(tmp_path: Path, trusted: bool) -> None:
    """By default a client cannot choose the address its limits count under: eight /health requests with
    eight X-Forwarded-For addresses share one bucket of five. With ``FORWARDED_ALLOW_IPS=127.0.0.1`` (a
    proxy on this machine) each forwarded address is a client of its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = {"RATE_LIMIT_HEALTH": "5/minute", **({"FORWARDED_ALLOW_IPS": "127.0.0.1"} if trusted else {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxyai.cli", "api", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/docs", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "proxyai api did not start"
                time.sleep(0.3)
        codes = [
            httpx.get(f"{base}/health", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=5).status_code
            for i in range(8)
        ]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    if trusted:
        assert codes == [200] * 8, codes
    else:
        assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}, codes
