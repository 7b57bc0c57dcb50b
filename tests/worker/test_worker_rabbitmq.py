"""RabbitMQ as the broker (``CELERY_BROKER_URL=amqp://…``): the real server on 127.0.0.1:5672 (started
here when it is down), real worker processes. A worker killed mid-job: RabbitMQ gives its unacknowledged
message back as soon as the connection drops, and the next worker takes the part over from the dead
holder's lease; the job is done once."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import BOTH_QUEUES, DONE_FILES, Worker, job_files, make_api, make_settings, migrate

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def rabbitmq() -> Iterator[str]:
    """The broker, its two queues emptied (other runs may have left messages in them)."""
    if not _listening(5672):
        server = shutil.which("rabbitmq-server")
        assert server, "RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not installed"
        subprocess.run([server, "-detached"], check=False, timeout=60)
        deadline = time.monotonic() + 90
        while not _listening(5672) and time.monotonic() < deadline:
            time.sleep(1)
        assert _listening(5672), "rabbitmq-server did not start"
    _purge()
    yield AMQP_URL
    _purge()


def _purge() -> None:
    from kombu import Connection

    with Connection(AMQP_URL, connect_timeout=10) as conn:
        channel = conn.channel()
        for queue in BOTH_QUEUES.split(","):
            try:
                channel.queue_purge(queue)
            except Exception:  # not declared yet
                channel = conn.channel()


def test_jobs_run_on_rabbitmq_and_survive_a_killed_worker(
    tmp_path: Path, rabbitmq: str, workers: Any, dialogue_wav: Path
) -> None:
    data = tmp_path / "data"
    settings = make_settings(data, broker=rabbitmq)
    migrate(settings)
    api = make_api(settings)
    assert api.client.get("/health").json()["status"] == "ok"

    # one job from upload to result
    first: Worker = workers(data, BOTH_QUEUES, "rabbit-1", celery_broker_url=rabbitmq, slow_stage="transcribing:120")
    first.wait_ping(api.celery, timeout=60)
    first.wait_event("models warm", timeout=90)
    upload_id, correlation_id = api.upload(dialogue_wav)
    deadline = time.monotonic() + 90
    while api.status(upload_id)["stage"] != "transcribing":
        assert time.monotonic() < deadline, api.status(upload_id)
        time.sleep(0.2)
    time.sleep(1)
    first.kill(signal.SIGKILL)
    assert first.proc.wait(timeout=10) == -signal.SIGKILL
    killed = time.monotonic()

    # default settings, no scheduler: the broker hands the message out again at once
    second: Worker = workers(data, BOTH_QUEUES, "rabbit-2", celery_broker_url=rabbitmq)
    final = api.wait_finished(upload_id, timeout=150)
    assert final["status"] == "done", f"{final}\n{second.tail()}"
    assert time.monotonic() - killed < 120
    took = second.events("took over the part of a process that died on this machine", upload_id=upload_id)
    assert [line["part"] for line in took] == ["asr"], second.tail()
    second.wait_for(lambda: second.events("job done", upload_id=upload_id), 20, "job done line")
    merges = first.events("job done", upload_id=upload_id) + second.events("job done", upload_id=upload_id)
    assert len(merges) == 1 and merges[0]["correlation_id"] == correlation_id
    assert job_files(settings.results / upload_id) == DONE_FILES
    result = api.client.get(f"/results/{upload_id}", headers=api.headers).json()
    assert len(result["speakers"]) == 2 and result["segments"]

    # and the next job on the surviving worker, straight through
    upload_id, _ = api.upload(dialogue_wav)
    assert api.wait_finished(upload_id, timeout=90)["status"] == "done"
