"""Storage that fails: a full upload disk is 507, a folder that cannot be written makes /health 503 and a
job fail at once with a message for the operator. Real small file systems (tmpfs mounts: the tests run
as root on our machines and in CI; elsewhere they are skipped, saying why)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_helpers import ApiClient, assert_error


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``mount(name, options)``: a tmpfs at ``tmp_path/name`` (e.g. ``size=1m`` or ``size=1m,ro``)."""
    mounted: list[Path] = []

    def make(name: str, options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield make
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_full_upload_disk_is_507_and_leaves_nothing(
    make_sqlite_api: Callable[..., ApiClient], mount: Callable[[str, str], Path], short_stereo: bytes
) -> None:
    uploads = mount("uploads", "size=256k")
    api = make_sqlite_api(upload_folder=uploads)
    key = api.new_user()
    assert len(short_stereo) > 256 * 1024
    assert_error(api.upload(key, short_stereo, "a.wav"), 507, mentions="full")
    assert list(uploads.iterdir()) == []
    assert api.get("/jobs", headers={"X-API-Key": key}).json()["total"] == 0


def test_read_only_folders_make_health_503_and_fail_jobs_at_once(
    make_sqlite_api: Callable[..., ApiClient], mount: Callable[[str, str], Path], short_stereo: bytes
) -> None:
    results = mount("results", "size=1m,ro")
    api = make_sqlite_api(results_folder=results)
    key = api.new_user()
    health = api.get("/health")
    assert health.status_code == 503 and list(health.json()["failing"]) == ["storage.results"], health.json()
    response = api.upload(key, short_stereo, "a.wav")  # eager: the job runs during the upload
    assert response.status_code == 200, response.text
    status = api.get(f"/status/{response.json()['upload_id']}", headers={"X-API-Key": key}).json()
    assert status["status"] == "failed", status
    assert "cannot write its files" in status["error"] and "operator" in status["error"], status["error"]


def test_read_only_uploads_are_503_not_400(
    make_sqlite_api: Callable[..., ApiClient], mount: Callable[[str, str], Path], short_stereo: bytes
) -> None:
    uploads = mount("uploads", "size=1m,ro")
    api = make_sqlite_api(upload_folder=uploads)
    key = api.new_user()
    assert_error(api.upload(key, short_stereo, "a.wav"), 503, mentions="cannot store uploads")
    assert "storage.uploads" in api.get("/health").json()["failing"]
