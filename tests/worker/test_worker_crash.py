"""Workers that die or run out of time: the job survives a SIGKILL of its worker and is merged once; a
worker survives the death of its pool process; a part over its time limit fails the job."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import (
    BOTH_QUEUES,
    DONE_FILES,
    Worker,
    concat_wav,
    job_files,
    make_api,
    make_settings,
    migrate,
    saved,
)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …; comm may hold spaces
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _start(
    tmp_path: Path, workers: Any, label: str, limits: dict[str, int] | None = None, **kw: Any
) -> tuple[Any, Any, Worker, dict[str, Any]]:
    """Settings, the API and one warm worker serving both queues (default settings unless ``limits``;
    ``kw`` goes to the worker, as ``slow_stage``)."""
    data = tmp_path / "data"
    settings = make_settings(data, **(limits or {}))
    migrate(settings)
    api = make_api(settings)
    worker: Worker = workers(data, BOTH_QUEUES, label, **(limits or {}), **kw)
    worker.wait_ping(api.celery, timeout=60)
    warm = worker.wait_event("models warm", timeout=90)
    return settings, api, worker, warm


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    """About 2.5 minutes of speech: four reference recordings one after the other."""
    target = tmp_path_factory.mktemp("audio") / "long_call.wav"
    seconds = concat_wav(
        [shared_audio / n for n in ("dialogue_2spk.wav", "meeting_4spk.wav", "phone_2spk.wav", "ru_support_call.wav")],
        target,
    )
    assert 140 < seconds < 160
    return target


def test_job_survives_sigkill_of_its_worker_and_is_merged_once(
    tmp_path: Path, redis_db: Any, workers: Any, long_wav: Path
) -> None:
    """Default settings (the visibility timeout is hours): the dead worker's lease expires, beat's reaper
    sends the part again, and the job is done within two minutes of the kill, merged once."""
    settings, api, first, _ = _start(tmp_path, workers, "first")

    upload_id, correlation_id = api.upload(long_wav)
    # recognition under way (diarization comes first on a worker with one pool process)
    deadline = time.monotonic() + 120
    while True:
        status = api.status(upload_id)
        assert status["status"] != "done", f"the job finished before the worker could be killed: {status}"
        if status["status"] == "processing" and status["stage"] == "transcribing":
            break
        assert time.monotonic() < deadline, f"recognition did not start: {status}\n{first.tail()}"
        time.sleep(0.2)
    time.sleep(3)
    status = api.status(upload_id)
    assert status["status"] == "processing", status

    first.kill(signal.SIGKILL)  # the main process and its pool children
    assert first.proc.wait(timeout=10) == -signal.SIGKILL
    killed = time.monotonic()
    status = api.status(upload_id)
    assert status["status"] == "processing", status
    assert not (settings.results / upload_id / "result.json").exists()
    assert not first.events("job done", upload_id=upload_id)

    # a new worker with the clock; Redis would hand the old message out again only after hours
    second: Worker = workers(settings.data_dir, BOTH_QUEUES, "second", beat=True)
    final = api.wait_finished(upload_id, timeout=150)
    assert final["status"] == "done", f"{final}\n{second.tail()}"
    assert time.monotonic() - killed < 120, "recovered, but later than two minutes after the kill"
    assert final["progress"] == 100 and final["error"] is None
    assert second.events("a part's worker stopped renewing its lease; sending the part again", upload_id=upload_id)

    # written once: one result file, no temporary files left behind
    folder = settings.results / upload_id
    assert job_files(folder) == DONE_FILES
    result = api.client.get(f"/results/{upload_id}", headers=api.headers)
    assert result.status_code == 200, result.text
    assert len(result.json()["speakers"]) >= 2
    assert result.json()["duration"] == pytest.approx(final["duration"], abs=0.5)

    # the new worker redid recognition and merged, once; every line of it carries the job's ids
    second.wait_for(lambda: "succeeded" in second.text(), 20, "task succeeded line")
    merges = first.events("job done", upload_id=upload_id) + second.events("job done", upload_id=upload_id)
    assert len(merges) == 1, merges
    assert merges[0]["correlation_id"] == correlation_id
    assert saved(second, "asr", upload_id=upload_id, correlation_id=correlation_id)
    assert job_files(folder) == DONE_FILES
    assert api.status(upload_id)["status"] == "done"


@pytest.mark.parametrize("stage", ["preparing", "diarizing", "merging"])
def test_a_worker_killed_in_any_stage_is_recovered_once(
    tmp_path: Path, redis_db: Any, workers: Any, dialogue_wav: Path, stage: str
) -> None:
    """SIGKILL of the worker while the job is in ``stage`` (held there by a test stub that makes the
    stage sleep first: on this recording each takes well under a second); default settings: the job is
    done within two minutes, prepared and merged once in all."""
    settings, api, first, _ = _start(tmp_path, workers, "first", slow_stage=f"{stage}:60")
    upload_id, correlation_id = api.upload(dialogue_wav)
    _wait_for_stage(api, upload_id, stage, first)
    time.sleep(1)
    assert api.status(upload_id)["stage"] == stage
    first.kill(signal.SIGKILL)
    assert first.proc.wait(timeout=10) == -signal.SIGKILL
    killed = time.monotonic()
    assert api.status(upload_id)["status"] == "processing"

    second: Worker = workers(settings.data_dir, BOTH_QUEUES, "second", beat=True)
    final = api.wait_finished(upload_id, timeout=150)
    assert final["status"] == "done", f"{final}\n{second.tail()}"
    assert time.monotonic() - killed < 120, "recovered, but later than two minutes after the kill"
    second.wait_for(lambda: second.events("job done", upload_id=upload_id), 20, "job done line")
    for event in ("prepared", "job done"):
        lines = first.events(event, upload_id=upload_id) + second.events(event, upload_id=upload_id)
        assert len(lines) == 1, (event, lines)
        assert lines[0]["correlation_id"] == correlation_id
    assert job_files(settings.results / upload_id) == DONE_FILES
    result = api.client.get(f"/results/{upload_id}", headers=api.headers).json()
    assert len(result["speakers"]) == 2 and result["segments"]


def _wait_for_stage(api: Any, upload_id: str, stage: str, worker: Worker, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = api.status(upload_id)
        assert status["status"] != "done", f"the job finished before the worker could be killed: {status}"
        if status["stage"] == stage:
            return
        assert time.monotonic() < deadline, f"the job never reached {stage}: {status}\n{worker.tail()}"
        time.sleep(0.1)


def test_a_pool_process_killed_out_of_memory_mid_job_is_recovered_at_once(
    tmp_path: Path, redis_db: Any, workers: Any, long_wav: Path
) -> None:
    """The out-of-memory killer takes the pool process in the middle of recognition (simulated: SIGKILL
    to that process alone, as the kernel sends it). Celery starts another pool process and hands it the
    message again; the new process sees that the lease's holder died on this machine and takes the part
    over at once, without waiting for the lease to expire."""
    settings, api, worker, _ = _start(tmp_path, workers, "oom")
    upload_id, _ = api.upload(long_wav)
    _wait_for_stage(api, upload_id, "transcribing", worker)
    time.sleep(2)
    (child,) = _children(worker.proc.pid)
    os.kill(child, signal.SIGKILL)
    killed = time.monotonic()
    final = api.wait_finished(upload_id, timeout=150)
    assert final["status"] == "done", f"{final}\n{worker.tail()}"
    assert time.monotonic() - killed < 120
    assert worker.proc.poll() is None, "the worker's main process should have survived"
    took = worker.events("took over the part of a process that died on this machine", upload_id=upload_id)
    assert [line["part"] for line in took] == ["asr"], worker.tail()
    assert f":{child}:" in took[0]["dead"]
    assert len(worker.events("job done", upload_id=upload_id)) == 1
    assert job_files(settings.results / upload_id) == DONE_FILES


def test_worker_recovers_when_its_pool_process_dies(
    tmp_path: Path, redis_db: Any, workers: Any, dialogue_wav: Path
) -> None:
    """A pool process killed (the OOM killer, a hard time limit) is replaced by Celery; the replacement
    warms its models before it says it is up, and Celery must not kill it for taking too long."""
    _, api, worker, warm = _start(tmp_path, workers, "pool")
    (child,) = _children(worker.proc.pid)
    os.kill(child, signal.SIGKILL)

    timed_out = "Timed out waiting for UP message"
    worker.wait_for(
        lambda: len(worker.events("models warm")) >= 2 or timed_out in worker.text(),
        60,
        "the replacement pool process to warm up",
    )
    assert timed_out not in worker.text(), (
        "Celery killed the replacement pool process because its warm-up took longer than "
        "worker_proc_alive_timeout:\n" + worker.tail(20)
    )

    upload_id, _ = api.upload(dialogue_wav)
    final = api.wait_finished(upload_id, timeout=90)
    assert final["status"] == "done", f"{final}\n{worker.tail()}"

    # Celery kills a new pool process that has not reported for duty after worker_proc_alive_timeout;
    # the warm-up runs before that report, so the limit must leave it ample room
    alive_timeout = api.celery.conf.worker_proc_alive_timeout
    assert alive_timeout >= 2 * warm["seconds"], (
        f"worker_proc_alive_timeout is {alive_timeout} s, the warm-up of a pool process took {warm['seconds']} s"
    )


def test_a_job_over_its_time_limit_fails_with_a_message(
    tmp_path: Path, redis_db: Any, workers: Any, dialogue_wav: Path
) -> None:
    """``enqueue`` sends the preparation with the limits for the duration the upload claimed (the parts
    get the limits for the decoded one), the worker enforces them: a step that runs past its soft limit
    fails the job with a message that says what to do. (The preparation is held up by the test stub
    that makes it sleep first: no real stage of a recording is that slow.)"""
    from proxyai.context import time_limits
    from proxyai.worker.tasks import enqueue

    limits = {"task_time_limit": 10, "task_soft_time_limit": 5}
    settings, api, worker, _ = _start(tmp_path, workers, "limits", limits, slow_stage="preparing:60")
    assert time_limits(settings, 1.0) == (6, 11)
    user = api.ctx.store.user_by_key(api.key)
    assert user is not None
    job = api.ctx.store.create_job(user.id, "call.wav", dialogue_wav.stat().st_size, 1.0, {}, "cid-limit")
    api.ctx.files.upload_path(job.id).write_bytes(dialogue_wav.read_bytes())
    enqueue(api.celery, job.id, "cid-limit", 1.0)

    final = api.wait_finished(job.id, timeout=90)
    assert final["status"] == "failed", f"{final}\n{worker.tail()}"
    assert "time limit" in final["error"] and "TASK_TIME_LIMIT" in final["error"], final["error"]
    assert "Soft time limit (6s) exceeded" in worker.text()
    assert not api.ctx.files.part_path(job.id, "result").exists()
    assert worker.alive()


def test_a_worker_stopped_mid_job_gives_its_task_back(
    tmp_path: Path, redis_db: Any, workers: Any, dialogue_wav: Path
) -> None:
    """SIGTERM to a worker in the middle of recognition (held there by the slow-stage test stub; SIGINT
    and SIGHUP take the same path, tests/test_service_stop.py):
    it waits its grace period, cancels the task, gives the message back to the broker and exits within
    30 s, leaving no process; the next worker (no scheduler: nothing is reaped) gets that message and
    the job is done once."""
    settings, api, first, _ = _start(tmp_path, workers, "first", slow_stage="transcribing:120")
    upload_id, correlation_id = api.upload(dialogue_wav)
    _wait_for_stage(api, upload_id, "transcribing", first)
    time.sleep(1)
    group = first.proc.pid
    first.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert first.proc.wait(timeout=30) == 0, first.tail()
    assert time.monotonic() - stopped < 30
    with pytest.raises(ProcessLookupError):  # nothing left of its process group (pool, children)
        for _ in range(50):
            os.killpg(group, 0)
            time.sleep(0.1)
    assert redis_db.llen("preprocess_gpu") == 1, "the running task's message was not given back"
    assert api.status(upload_id)["status"] == "processing"

    second: Worker = workers(settings.data_dir, BOTH_QUEUES, "second")
    final = api.wait_finished(upload_id, timeout=120)
    assert final["status"] == "done", f"{final}\n{second.tail()}"
    # the very message the first worker had taken (its task id), not a new one sent by a reaper
    (task_id,) = re.findall(r"proxyai\.transcribe_segments\[([0-9a-f-]+)\] received", first.text())
    assert f"proxyai.transcribe_segments[{task_id}] received" in second.text(), second.tail()
    assert "Restoring 1 unacknowledged message(s)" in first.text()
    second.wait_for(lambda: second.events("job done", upload_id=upload_id), 20, "job done line")
    merges = first.events("job done", upload_id=upload_id) + second.events("job done", upload_id=upload_id)
    assert len(merges) == 1 and merges[0]["correlation_id"] == correlation_id
    assert job_files(settings.results / upload_id) == DONE_FILES


def test_a_task_that_outlives_the_configured_visibility_timeout_is_not_handed_out_twice(
    tmp_path: Path, redis_db: Any, workers: Any, dialogue_wav: Path
) -> None:
    """``CELERY_VISIBILITY_TIMEOUT=10`` with a hard limit of 60 s: the broker's timeout is raised above
    the limit, so Redis does not give the running task's message to the idle second worker after 10 s
    (recognition held for 25 s by the slow-stage test stub: no real stage is that slow here)."""
    limits = {"celery_visibility_timeout": 10, "task_time_limit": 60, "task_time_limit_max": 60}
    settings, api, first, _ = _start(tmp_path, workers, "busy", limits, slow_stage="transcribing:25")
    upload_id, _ = api.upload(dialogue_wav)
    _wait_for_stage(api, upload_id, "transcribing", first)
    idle: Worker = workers(settings.data_dir, BOTH_QUEUES, "idle", **limits)
    idle.wait_ping(api.celery, timeout=60)
    final = api.wait_finished(upload_id, timeout=90)
    assert final["status"] == "done", f"{final}\n{first.tail()}"
    received = re.findall(r"proxyai\.transcribe_segments\[([0-9a-f-]+)\] received", first.text() + idle.text())
    assert len(received) == 1, f"the recognition task was handed out {len(received)} times"
    assert len(saved(first, "asr", upload_id=upload_id)) == 1 and not saved(idle, "asr", upload_id=upload_id)
    assert "leased by a live task" not in idle.text()


def test_a_job_that_runs_out_of_memory_fails_and_the_worker_runs_the_next(
    tmp_path: Path, redis_db: Any, workers: Any, dialogue_wav: Path
) -> None:
    """Celery stops a worker (or its pool process, again and again) on a MemoryError; the job task turns
    it into an ordinary failure: that job fails with a message, the same pool process runs the next job.
    (The MemoryError comes from the test stub, at the start of the speech scan.)"""
    _, api, worker, _ = _start(tmp_path, workers, "memory", slow_stage="preparing:memory")
    (child,) = _children(worker.proc.pid)
    upload_id, _ = api.upload(dialogue_wav)
    final = api.wait_finished(upload_id, timeout=60)
    assert final["status"] == "failed", f"{final}\n{worker.tail()}"
    assert "more memory than this worker has" in final["error"], final["error"]
    upload_id, _ = api.upload(dialogue_wav)
    assert api.wait_finished(upload_id, timeout=90)["status"] == "done", worker.tail()
    assert worker.proc.poll() is None and _children(worker.proc.pid) == [child]
