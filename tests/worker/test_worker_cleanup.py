"""The daily clean-up: finished jobs past the retention go with their files, running ones never."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from worker_helpers import make_api, make_settings


def test_cleanup_deletes_old_finished_jobs_and_old_orphans_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", broker=None, file_retention_days=7)
    api = make_api(settings)
    store, files = api.ctx.store, api.ctx.files
    user = store.user_by_key(api.key)
    assert user is not None
    long_ago = datetime.now(timezone.utc) - timedelta(days=30)

    def job(status: str, created_at: datetime | None) -> str:
        row = store.create_job(user.id, f"{status}.wav", 10, 1.0, {}, f"cid-{status}")
        if created_at is not None:
            assert store.update_job(row.id, status=status, created_at=created_at)
        else:
            assert store.update_job(row.id, status=status)
        files.upload_path(row.id).write_bytes(b"audio")
        files.write_json(row.id, "result", {"segments": []})
        files.write_json(row.id, "asr", {"segments": []})
        return str(row.id)

    old = {status: job(status, long_ago) for status in ("done", "failed", "queued", "processing")}
    recent_done = job("done", None)
    store.set_labels(old["done"], {"SPEAKER_00": "Anna"})

    old_mtime = time.time() - 30 * 86400
    orphan_old = files.uploads / "orphan-old"
    orphan_old.write_bytes(b"x")
    os.utime(orphan_old, (old_mtime, old_mtime))
    orphan_dir_old = files.results / "orphan-dir-old"
    orphan_dir_old.mkdir()
    (orphan_dir_old / "result.json").write_text("{}")
    os.utime(orphan_dir_old, (old_mtime, old_mtime))
    orphan_new = files.uploads / "orphan-new"
    orphan_new.write_bytes(b"x")
    orphan_dir_new = files.results / "orphan-dir-new"
    orphan_dir_new.mkdir()
    # partial uploads: one an API left two hours ago (swept), one being written now (kept)
    fd, stale = files.new_upload()
    os.close(fd)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fd, live = files.new_upload()
    os.write(fd, b"part of an upload")
    os.close(fd)

    outcome = api.task("cleanup_old_files").apply()
    assert outcome.successful(), outcome.traceback
    assert outcome.result == {"jobs": 2, "orphans": 2, "partial_uploads": 1}
    assert not Path(stale).exists()
    assert Path(live).read_bytes() == b"part of an upload"

    for status in ("done", "failed"):
        gone = old[status]
        assert store.get_job(gone) is None, status
        assert not files.upload_path(gone).exists(), status
        assert not files.result_dir(gone).exists(), status
    assert store.labels(old["done"]) == {}
    for upload_id in (old["queued"], old["processing"], recent_done):
        row = store.get_job(upload_id)
        assert row is not None
        assert files.upload_path(upload_id).read_bytes() == b"audio"
        assert files.part_path(upload_id, "result").exists()
    assert store.get_job(old["queued"]).status == "queued"
    assert store.get_job(old["processing"]).status == "processing"

    assert not orphan_old.exists()
    assert not orphan_dir_old.exists()
    assert orphan_new.exists()
    assert orphan_dir_new.exists()

    # nothing left to do the second time
    assert api.task("cleanup_old_files").apply().result == {"jobs": 0, "orphans": 0, "partial_uploads": 0}


def test_cleanup_keeps_everything_within_the_retention(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", broker=None, file_retention_days=7)
    api = make_api(settings)
    store, files = api.ctx.store, api.ctx.files
    six_days = datetime.now(timezone.utc) - timedelta(days=6)
    row = store.create_job(None, "a.wav", 10, 1.0, {}, None)
    store.update_job(row.id, status="done", created_at=six_days)
    files.upload_path(row.id).write_bytes(b"audio")
    files.write_json(row.id, "result", {})
    result: Any = api.task("cleanup_old_files").apply().result
    assert result == {"jobs": 0, "orphans": 0, "partial_uploads": 0}
    assert store.get_job(row.id) is not None
    assert files.upload_path(row.id).exists()


def test_cleanup_deletes_the_embedded_brokers_delivered_messages_only(tmp_path: Path) -> None:
    """kombu's SQLAlchemy transport keeps a delivered message's row for ever (marked invisible): the daily
    clean-up deletes those rows and never a message still waiting."""
    import base64
    import json
    import sqlite3

    from kombu import Connection

    from proxyai.worker.tasks import delivered_messages

    settings = make_settings(tmp_path / "data", broker=None)
    settings.data_dir.mkdir(parents=True)
    assert delivered_messages(settings.broker_url) == 0  # no broker file yet: nothing to do, none made
    with Connection(settings.broker_url) as conn:
        queue = conn.SimpleQueue("cleanup-test")
        for n in range(3):
            queue.put({"n": n})
        for _ in range(2):
            queue.get(timeout=5).ack()
        queue.close()
    db = str(tmp_path / "data" / "broker.db")

    def rows() -> list[tuple[int, str]]:
        with sqlite3.connect(db) as c:
            return list(c.execute("SELECT visible, payload FROM kombu_message ORDER BY id"))

    assert [visible for visible, _ in rows()] == [0, 0, 1]
    assert delivered_messages(settings.broker_url) == 2
    ((visible, payload),) = rows()
    body = json.loads(base64.b64decode(json.loads(payload)["body"]))
    assert visible == 1 and body == {"n": 2}
    assert delivered_messages(settings.broker_url) == 0
