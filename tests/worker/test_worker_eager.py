"""The tasks run in this process (CELERY_TASK_ALWAYS_EAGER): running them again changes nothing, and a
job whose pipeline cannot succeed ends failed with a message a user can act on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from worker_helpers import Api, make_api, make_settings


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> Api:
    data = tmp_path_factory.mktemp("eager") / "data"
    return make_api(make_settings(data, broker=None, celery_task_always_eager=True))


@pytest.fixture(scope="module")
def done_job(eager: Api, dialogue_wav: Path) -> str:
    """A job uploaded through the API; in eager mode both parts and the merge run during the upload."""
    assert eager.celery.conf.task_always_eager
    upload_id, _ = eager.upload(dialogue_wav)
    status = eager.status(upload_id)
    assert status["status"] == "done", status
    return upload_id


def _user_id(api: Api) -> str:
    user = api.ctx.store.user_by_key(api.key)
    assert user is not None
    return str(user.id)


def _snapshot(api: Api, upload_id: str) -> dict[str, bytes]:
    folder = api.ctx.files.result_dir(upload_id)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_running_the_tasks_again_changes_nothing(eager: Api, done_job: str) -> None:
    before = _snapshot(eager, done_job)
    # the prepared samples are dropped once the job is done; the speech map stays
    assert list(before) == ["asr.json", "diarization.json", "prepared/speech.json", "result.json"]
    job = eager.ctx.store.get_job(done_job)
    for task in map(eager.task, ("transcribe_segments", "prepare_job", "diarize_full", "transcribe_segments")):
        outcome = task.apply(args=(done_job, None))
        assert outcome.successful(), outcome.traceback
        outcome = task.apply(args=(done_job, job.correlation_id))
        assert outcome.successful(), outcome.traceback
    assert _snapshot(eager, done_job) == before
    status = eager.status(done_job)
    assert (status["status"], status["stage"], status["progress"], status["error"]) == ("done", "done", 100, None)
    result = eager.client.get(f"/results/{done_job}", headers=eager.headers)
    assert result.status_code == 200
    assert len(result.json()["speakers"]) == 2


def test_a_lost_part_file_is_redone_and_merged_again(eager: Api, done_job: str) -> None:
    """The merge reads both part files; a part whose flag is set but whose file is gone is done again."""
    files = eager.ctx.files
    result_before = json.loads(files.part_path(done_job, "result").read_text())
    files.part_path(done_job, "diarization").unlink()
    files.part_path(done_job, "result").unlink()
    eager.ctx.store.update_job(done_job, status="processing", stage="diarizing")
    outcome = eager.task("diarize_full").apply(args=(done_job, None))
    assert outcome.successful(), outcome.traceback
    assert eager.status(done_job)["status"] == "done"
    assert sorted(p.name for p in files.result_dir(done_job).iterdir()) == [
        "asr.json",
        "diarization.json",
        "prepared",
        "result.json",
    ]
    result_after = json.loads(files.part_path(done_job, "result").read_text())
    assert result_after["speakers"] == result_before["speakers"]
    assert result_after["segments"] == result_before["segments"]


def _job(api: Api, source: Path | bytes, options: dict[str, Any], correlation_id: str) -> str:
    job = api.ctx.store.create_job(_user_id(api), "call.wav", 1000, 29.24, options, correlation_id)
    target = api.ctx.files.upload_path(job.id)
    if isinstance(source, Path):
        shutil.copyfile(source, target)
    else:
        target.write_bytes(source)
    return str(job.id)


def test_a_bad_language_fails_the_job_with_a_message_naming_it(eager: Api, dialogue_wav: Path) -> None:
    """(A request cannot ask for an unknown language; a job row can hold one, as from an older version.)"""
    upload_id = _job(eager, dialogue_wav, {"language": "xx"}, "cid-bad-language")
    eager.task("prepare_job").apply(args=(upload_id, "cid-bad-language"))  # eager: it runs both parts too

    status = eager.status(upload_id)
    assert status["status"] == "failed", status
    assert status["stage"] == "failed"
    assert "language" in status["error"] and "'xx'" in status["error"], status["error"]
    assert "internal error" not in status["error"]
    result = eager.client.get(f"/results/{upload_id}", headers=eager.headers)
    assert result.status_code == 409
    assert "'xx'" in result.json()["detail"]
    assert not eager.ctx.files.part_path(upload_id, "result").exists()

    # a redelivered task does not bring it back to processing
    for task in map(eager.task, ("transcribe_segments", "diarize_full", "prepare_job")):
        task.apply(args=(upload_id, "cid-bad-language"))
    assert eager.status(upload_id)["status"] == "failed"


def test_a_file_that_cannot_be_decoded_fails_the_job(eager: Api) -> None:
    garbage = b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(256)) * 40
    upload_id = _job(eager, garbage, {}, "cid-garbage")
    for task in map(eager.task, ("prepare_job", "transcribe_segments", "diarize_full")):
        outcome = task.apply(args=(upload_id, "cid-garbage"))
        assert outcome.state in ("FAILURE", "SUCCESS")
    status = eager.status(upload_id)
    assert status["status"] == "failed", status
    assert "cannot be decoded as audio" in status["error"], status["error"]
    assert eager.ctx.store.get_job(upload_id).status == "failed"
