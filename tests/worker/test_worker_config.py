"""Time limits that grow with the audio, the messages ``enqueue`` sends, the beat schedule."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from worker_helpers import make_api, make_settings


def test_time_limits_grow_with_the_duration(tmp_path: Path) -> None:
    from proxyai.context import time_limits

    settings = make_settings(tmp_path, broker=None, task_time_limit=600, task_soft_time_limit=550)
    assert time_limits(settings, None) == (550, 600)
    assert time_limits(settings, 0.0) == (550, 600)

    soft, hard = time_limits(settings, 3600.0)
    assert hard > 3600 and hard >= 600 + 1.5 * 3600
    assert 3600 < soft < hard

    previous = (0, 0)
    for duration in (1, 30, 60, 600, 1800, 3600, 3 * 3600):
        soft, hard = time_limits(settings, float(duration))
        assert soft < hard
        assert hard > 1.5 * duration  # a slow CPU transcribes at about real time, plus decoding
        assert soft >= previous[0] and hard >= previous[1]
        previous = (soft, hard)


def test_time_limits_stop_growing_below_the_visibility_timeout(tmp_path: Path) -> None:
    """The hard limit grows up to TASK_TIME_LIMIT_MAX and no further, and Redis' visibility timeout is
    always above it (whatever CELERY_VISIBILITY_TIMEOUT says): the broker never hands a task that is
    still running to a second worker."""
    from proxyai.context import time_limits, visibility_timeout

    settings = make_settings(tmp_path, broker=None, task_time_limit_max=7200, celery_visibility_timeout=3600)
    hards = [time_limits(settings, float(d))[1] for d in (3600, 5000, 10**6)]
    assert hards[0] == 600 + 5400 and hards[1] == hards[2] == 7200
    assert visibility_timeout(settings) > 7200
    assert visibility_timeout(make_settings(tmp_path, broker=None, celery_visibility_timeout=10**6)) == 10**6


def test_time_limits_keep_soft_below_hard(tmp_path: Path) -> None:
    from proxyai.context import time_limits

    settings = make_settings(tmp_path, broker=None, task_time_limit=60, task_soft_time_limit=300)
    for duration in (None, 10.0, 1000.0):
        soft, hard = time_limits(settings, duration)
        assert 0 < soft < hard


def test_a_hard_limit_set_alone_under_the_default_soft_one_still_queues_jobs(tmp_path: Path) -> None:
    """``TASK_TIME_LIMIT=60`` with the default soft limit (550 s): Celery refuses to send a task whose
    soft limit is above its hard one, so the app's own defaults keep the soft limit below too."""
    from proxyai.worker.tasks import enqueue

    api = make_api(make_settings(tmp_path / "data", broker=None, task_time_limit=60))
    task = api.task("prepare_job")
    assert 0 < task.soft_time_limit < task.time_limit == 60
    job = api.ctx.store.create_job(None, "a.wav", 10, 1.0, {}, "cid")
    enqueue(api.celery, job.id, "cid", 1.0)


def _messages(redis_db: Any, queue: str) -> list[dict[str, Any]]:
    out = []
    for raw in redis_db.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        out.append({"headers": envelope["headers"], "body": body})
    return out


def test_a_job_starts_with_its_preparation_which_sends_both_parts(
    tmp_path: Path, redis_db: Any, dialogue_wav: Path
) -> None:
    """``enqueue`` sends the preparation (the CPU queue) with the limits for the duration the upload
    claimed; the preparation sends both parts with the limits for the duration it decoded, and the same
    correlation id."""
    from proxyai.context import time_limits
    from proxyai.worker.tasks import enqueue

    settings = make_settings(tmp_path / "data")
    api = make_api(settings)
    job = api.ctx.store.create_job(None, "a.wav", 10, 3600.0, {}, "cid-enqueue")
    shutil.copyfile(dialogue_wav, api.ctx.files.upload_path(job.id))
    redis_db.delete("preprocess_cpu", "preprocess_gpu")
    try:
        enqueue(api.celery, job.id, "cid-enqueue", 3600.0)
        first = _messages(redis_db, "preprocess_cpu")
        assert not redis_db.llen("preprocess_gpu")
        redis_db.delete("preprocess_cpu")
        outcome = api.task("prepare_job").apply(args=(job.id, "cid-enqueue"))
        assert outcome.successful(), outcome.traceback
        cpu, gpu = _messages(redis_db, "preprocess_cpu"), _messages(redis_db, "preprocess_gpu")
    finally:
        redis_db.delete("preprocess_cpu", "preprocess_gpu")
    assert [m["headers"]["task"] for m in first] == ["proxyai.prepare_job"]
    assert [m["headers"]["task"] for m in cpu] == ["proxyai.diarize_full"]
    assert [m["headers"]["task"] for m in gpu] == ["proxyai.transcribe_segments"]
    decoded = api.ctx.store.get_job(job.id).duration
    assert decoded == pytest.approx(29.24, abs=0.05)
    for messages, duration in ((first, 3600.0), (cpu + gpu, decoded)):
        soft, hard = time_limits(settings, duration)
        for message in messages:
            headers = message["headers"]
            assert headers["timelimit"] == [hard, soft]
            assert headers["correlation_id"] == "cid-enqueue"
            args, kwargs, _ = message["body"]
            assert args == [job.id, "cid-enqueue"] and kwargs == {}
    assert time_limits(settings, 3600.0) != time_limits(settings, decoded)


def test_beat_schedule_runs_the_cleanup_daily(tmp_path: Path) -> None:
    celery_app = make_api(make_settings(tmp_path / "data", broker=None)).celery
    cleanup = celery_app.tasks["proxyai.cleanup_old_files"]
    schedule = celery_app.conf.beat_schedule
    entries = [e for e in schedule.values() if e["task"] == cleanup.name]
    assert len(entries) == 1, schedule
    when = entries[0]["schedule"]
    assert isinstance(when, crontab)
    # once a day: one hour, one minute, every day of the week and month
    assert len(when.hour) == 1 and len(when.minute) == 1
    assert len(when.day_of_week) == 7 and len(when.day_of_month) == 31 and len(when.month_of_year) == 12
    assert celery_app.conf.task_routes[cleanup.name]["queue"] == "preprocess_cpu"


@pytest.mark.parametrize("embedded", [True, False])
def test_crash_safe_settings(tmp_path: Path, embedded: bool) -> None:
    """Late acknowledgement and redelivery of a lost worker's task, one message at a time; the Redis
    visibility timeout from the settings, raised above the largest hard time limit (6 h by default)."""
    broker = None if embedded else "redis://127.0.0.1:6379/13"
    conf = make_api(make_settings(tmp_path / "data", broker=broker, celery_visibility_timeout=42)).celery.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    # the embedded broker: only how often it polls (which its channel keeps from create_engine)
    expected = (
        {"polling_interval": 1.0} if embedded else {"visibility_timeout": 6 * 3600 + 600, "unacked_restore_throttle": 1}
    )
    assert conf.broker_transport_options == expected


def test_apps_with_different_brokers_side_by_side_each_publish_to_their_own(tmp_path: Path, redis_db: Any) -> None:
    """Each ``create_app`` has its own job queue (tests build many in one process: Redis, then the
    embedded broker, then Redis again); none repoints another, nor the worker process's Celery app."""
    from proxyai.api.routes.health import queue_depths
    from proxyai.worker.app import celery_app
    from proxyai.worker.tasks import enqueue

    process_broker = celery_app.conf.broker_url
    redis_api = make_api(make_settings(tmp_path / "redis"))
    embedded = make_api(make_settings(tmp_path / "embedded", broker=None))
    redis_db.delete("preprocess_cpu", "preprocess_gpu")
    try:
        sent = {"redis": 0, "embedded": 0}
        for name, api in (("redis", redis_api), ("embedded", embedded), ("redis", redis_api), ("embedded", embedded)):
            job = api.ctx.store.create_job(None, "a.wav", 10, 1.0, {}, "cid")
            enqueue(api.celery, job.id, "cid", 1.0)
            sent[name] += 1
            assert redis_db.llen("preprocess_cpu") == sent["redis"], name
            assert queue_depths(embedded.celery)[("preprocess_cpu",)] == sent["embedded"], name
    finally:
        redis_db.delete("preprocess_cpu", "preprocess_gpu")
    assert celery_app.conf.broker_url == process_broker
    assert redis_api.celery is not embedded.celery


def test_a_cpu_worker_warms_the_configured_diarization_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``DIARIZATION_BACKEND=pyannote``: the CPU worker loads pyannote at start instead of the embedded
    encoder; pyannote.audio does not import here (torchaudio), so the failure is logged with its fix and
    the worker goes on (its pyannote jobs fail with the same message, the others run)."""
    from structlog.testing import capture_logs

    from proxyai.worker.app import make_celery
    from proxyai.worker.tasks import warm_up

    monkeypatch.setenv("PROXYAI_WORKER_QUEUES", "preprocess_cpu")
    settings = make_settings(tmp_path, broker=None, diarization_backend="pyannote")
    with capture_logs() as logs:
        warm_up(make_celery(settings, set_as_current=False))
    errors = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(errors) == 1 and "DIARIZATION_BACKEND" in errors[0]["event"]
    assert "pyannote" in errors[0]["error"] and "proxyai[pyannote]" in errors[0]["error"]
    assert [entry["diarization"] for entry in logs if entry["event"] == "models warm"] == ["pyannote"]
