"""Uploads: refused input leaves nothing behind, size limits, form options, correlation ids."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from api_helpers import DIALOGUE, ApiClient, assert_error
from audio_helpers import lying_flac
from fastapi.testclient import TestClient

from proxyai.api.app import create_app
from proxyai.config import load_settings


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> bytes:
    return (shared_audio / "jfk.flac").read_bytes()


# --- refused uploads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("notes.txt", b"hello, this is not audio\n" * 200),
        ("x.wav", random.Random(0).randbytes(50_000)),
        ("empty.wav", b""),
        ("page.html", b"<html><body>no sound here</body></html>"),
    ],
    ids=["text", "random-bytes-named-wav", "empty", "html"],
)
def test_what_is_not_audio_is_415_and_nothing_is_kept(sqlite_api: ApiClient, filename: str, content: bytes) -> None:
    key = sqlite_api.new_user()
    response = sqlite_api.upload(key, content, filename)
    assert_error(response, 415)
    assert sqlite_api.uploads_folder_files() == []
    assert sqlite_api.get("/jobs", headers={"X-API-Key": key}).json()["total"] == 0


def test_a_form_without_a_file_field_is_422(sqlite_api: ApiClient, jfk: bytes) -> None:
    key = sqlite_api.new_user()
    headers = {"X-API-Key": key}
    # a small file under another name
    response = sqlite_api.post("/upload/", files={"audio": ("a.wav", jfk[:2000])}, headers=headers)
    assert_error(response, 422, mentions="file")
    # a plain form field called 'file' (no file name: not a file part)
    response = sqlite_api.post(
        "/upload/", files={"language": (None, "en"), "file": (None, "jfk.flac")}, headers=headers
    )
    assert_error(response, 422, mentions="file")
    assert sqlite_api.uploads_folder_files() == []


def test_a_recording_under_another_field_name_is_422_not_413(sqlite_api: ApiClient, jfk: bytes) -> None:
    """A client that names the part 'audio' instead of 'file' sent no 'file' field: 422 saying so, not
    413 "form field 'audio' is too large" for a 1.1 MB recording when the limit is 500 MB."""
    key = sqlite_api.new_user()
    response = sqlite_api.post("/upload/", files={"audio": ("jfk.flac", jfk)}, headers={"X-API-Key": key})
    assert_error(response, 422, mentions="'file'")
    assert sqlite_api.uploads_folder_files() == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"file": "jfk.flac"}},
        {"data": {"file": "jfk.flac"}},  # application/x-www-form-urlencoded
        {"content": b"RIFF....WAVE", "headers": {"content-type": "audio/wav"}},
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},  # no boundary
    ],
    ids=["json", "urlencoded", "raw-audio", "multipart-without-boundary"],
)
def test_a_body_that_is_not_a_multipart_form_is_422(sqlite_api: ApiClient, kwargs: dict[str, object]) -> None:
    key = sqlite_api.new_user()
    headers = {"X-API-Key": key, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = sqlite_api.post("/upload/", headers=headers, **kwargs)  # type: ignore[arg-type]
    assert_error(response, 422, mentions="multipart")
    assert sqlite_api.uploads_folder_files() == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"language": "klingon"}, "language"),
        ({"language": "xx"}, "language"),
        ({"num_speakers": "0"}, "num_speakers"),
        ({"num_speakers": "-1"}, "num_speakers"),
        ({"num_speakers": "two"}, "num_speakers"),
        ({"num_speakers": "²"}, "num_speakers"),  # a digit to str.isdigit, not to int()
        ({"num_speakers": "٣"}, "num_speakers"),
        ({"num_speakers": "99999999999999999999"}, "num_speakers"),
        ({"num_speakers": "51"}, "num_speakers"),
        ({"min_speakers": "4", "max_speakers": "2"}, "min_speakers"),
        ({"max_speakers": "1.5"}, "max_speakers"),
        ({"task": "summarise"}, "task"),
        ({"diarization": "magic"}, "diarization"),
        ({"channels": "left"}, "channels"),
    ],
)
def test_a_bad_form_field_is_422_naming_it(
    sqlite_api: ApiClient, jfk: bytes, fields: dict[str, str], field: str
) -> None:
    key = sqlite_api.new_user()
    response = sqlite_api.upload(key, jfk, "jfk.flac", fields)
    body = assert_error(response, 422)
    assert body["detail"].startswith(f"{field}:"), body
    assert sqlite_api.uploads_folder_files() == []
    assert sqlite_api.get("/jobs", headers={"X-API-Key": key}).json()["total"] == 0


def test_a_file_over_the_size_limit_is_413_and_nothing_is_kept(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(max_file_size=100_000)
    key = api.new_user()
    content = random.Random(1).randbytes(300_000)
    response = api.upload(key, content, "big.wav")
    assert_error(response, 413, mentions="100000")
    assert api.uploads_folder_files() == []
    # the limit is on the file, not on the body: a file of exactly the limit gets past it (then is not audio)
    response = api.upload(key, content[:100_000], "exact.wav", {"language": "en"})
    assert_error(response, 415)
    assert api.uploads_folder_files() == []


def test_a_recording_longer_than_max_duration_is_413_and_nothing_is_kept(
    make_sqlite_api: Callable[..., ApiClient], tmp_path: Path
) -> None:
    """An 18 KB FLAC whose header claims a million seconds: refused from the probe, naming the setting."""
    api = make_sqlite_api()
    key = api.new_user()
    liar = lying_flac(tmp_path / "liar.flac").read_bytes()
    assert len(liar) < 100_000
    assert_error(api.upload(key, liar, "liar.flac"), 413, mentions="MAX_DURATION")
    assert api.uploads_folder_files() == []
    assert api.get("/jobs", headers={"X-API-Key": key}).json()["total"] == 0


def test_audio_longer_than_its_header_says_fails_the_job_at_max_duration_and_the_next_job_runs(
    make_sqlite_api: Callable[..., ApiClient], tmp_path: Path, short_stereo: bytes
) -> None:
    """The header claims 1 s, the file holds 12 s, ``MAX_DURATION`` is 5 s: the upload passes (the probe
    believes the header), decoding stops at 5 s and the job fails naming the setting; the next job runs."""
    api = make_sqlite_api(max_duration=5)
    key = api.new_user()
    liar = lying_flac(tmp_path / "liar.flac", seconds=12.0, claimed=1.0).read_bytes()
    response = api.upload(key, liar, "liar.flac")
    assert response.status_code == 200, response.text
    status = api.get(f"/status/{response.json()['upload_id']}", headers={"X-API-Key": key}).json()
    assert status["status"] == "failed", status
    assert "MAX_DURATION" in status["error"] and "internal error" not in status["error"], status
    response = api.upload(key, short_stereo, "short.wav")
    status = api.get(f"/status/{response.json()['upload_id']}", headers={"X-API-Key": key}).json()
    assert status["status"] == "done", status


def test_a_declared_length_far_over_the_limit_is_413_before_reading(
    make_sqlite_api: Callable[..., ApiClient],
) -> None:
    api = make_sqlite_api(max_file_size=100_000)
    key = api.new_user()
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n--b0undary--\r\n'
    )
    response = api.post(
        "/upload/",
        content=body,
        headers={
            "X-API-Key": key,
            "content-type": "multipart/form-data; boundary=b0undary",
            "content-length": str(50 * 1000**3),
        },
    )
    assert_error(response, 413)
    assert api.uploads_folder_files() == []


def test_an_oversized_form_field_is_413(sqlite_api: ApiClient, jfk: bytes) -> None:
    key = sqlite_api.new_user()
    response = sqlite_api.upload(key, jfk, "jfk.flac", {"language": "e" * 20_000})
    assert_error(response, 413, mentions="language")
    assert sqlite_api.uploads_folder_files() == []


# --- correlation ids -------------------------------------------------------------------------------


def test_the_correlation_id_is_echoed_or_generated_on_every_response(sqlite_api: ApiClient) -> None:
    key = sqlite_api.new_user()
    requests: list[tuple[str, str, dict[str, object], int]] = [
        ("GET", "/health", {}, 200),
        ("GET", "/jobs", {"headers": {"X-API-Key": key}}, 200),
        ("GET", "/jobs", {}, 401),
        ("GET", "/status/unknown", {"headers": {"X-API-Key": key}}, 404),
        ("POST", "/upload/", {"headers": {"X-API-Key": key}, "files": {"file": ("a.txt", b"text")}}, 415),
        ("POST", "/upload/", {"headers": {"X-API-Key": key}, "json": {}}, 422),
        ("GET", "/jobs?limit=0", {"headers": {"X-API-Key": key}}, 422),
        ("GET", "/no/such/route", {}, 404),
        ("DELETE", "/health", {}, 405),
    ]
    generated = set()
    for method, path, kwargs, status in requests:
        headers = dict(kwargs.pop("headers", {}))  # type: ignore[call-overload]
        sent = f"req-{method}-{status}-{len(generated)}"
        response = sqlite_api.request(method, path, headers={**headers, "X-Correlation-ID": sent}, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, (path, response.text)
        assert response.headers["x-correlation-id"] == sent, path
        response = sqlite_api.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status
        made = response.headers["x-correlation-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
        generated.add(made)
    assert len(generated) == len(requests), "a generated correlation id was reused"


def test_a_long_correlation_id_is_cut_to_64_characters(sqlite_api: ApiClient) -> None:
    response = sqlite_api.get("/health", headers={"X-Correlation-ID": "  " + "a" * 200 + " "})
    assert response.headers["x-correlation-id"] == "a" * 64
    response = sqlite_api.get("/health", headers={"X-Correlation-ID": "   "})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-correlation-id"])


# --- options and the second path (real models) -----------------------------------------------------


def test_language_and_num_speakers_are_honoured(sqlite_api: ApiClient, shared_audio: Path) -> None:
    """Two speakers, but the form says one and German: the result has one speaker and language de."""
    key = sqlite_api.new_user()
    audio = (shared_audio / DIALOGUE).read_bytes()
    response = sqlite_api.upload(key, audio, DIALOGUE, {"language": " DE ", "num_speakers": "1"})
    assert response.status_code == 200, response.text
    upload_id = response.json()["upload_id"]
    job = sqlite_api.ctx.store.get_job(upload_id)
    assert job is not None and job.options_dict() == {"language": "de", "num_speakers": 1}
    result = sqlite_api.get(f"/results/{upload_id}", headers={"X-API-Key": key}).json()
    assert result["status"] == "done"
    assert result["language"] == "de"
    assert [s["id"] for s in result["speakers"]] == ["SPEAKER_00"]
    assert {s["speaker"] for s in result["transcript"]} == {"SPEAKER_00"}
    assert {t["speaker"] for t in result["diarization"]} <= {"SPEAKER_00"}


def test_transcribe_is_the_upload_handler(make_api: Callable[..., ApiClient], short_stereo: bytes) -> None:
    api = make_api()
    key = api.new_user()
    response = api.upload(key, short_stereo, "stereo.wav", path="/transcribe")
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"upload_id"}
    upload_id = response.json()["upload_id"]
    status = api.get(f"/status/{upload_id}", headers={"X-API-Key": key}).json()
    assert status["status"] == "done" and status["progress"] == 100
    assert status["filename"] == "stereo.wav"
    result = api.get(f"/results/{upload_id}", headers={"X-API-Key": key}).json()
    assert result["language"] == "en"
    # one speaker per channel
    assert [s["id"] for s in result["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    # refusals are the same as on /upload/
    assert_error(api.upload(key, b"not audio", "x.wav", path="/transcribe"), 415)
    assert_error(api.upload(key, b"RIFF", "x.wav", {"num_speakers": "0"}, path="/transcribe"), 422)
    assert_error(api.upload(None, short_stereo, "x.wav", path="/transcribe"), 401)


def test_apps_side_by_side_each_run_jobs_in_their_own_context(tmp_path: Path, short_stereo: bytes) -> None:
    """Two apps in one process, each with its own data folder (so its own database and embedded broker),
    used in turns with no re-installation of anything between requests: each job runs (eagerly) in
    its own app's context and lands in its own store only."""
    clients: list[TestClient] = []
    keys: list[str] = []
    try:
        for name in ("one", "two"):
            settings = load_settings(
                data_dir=tmp_path / name, celery_task_always_eager=True, warmup=False, admin_token="t"
            )
            client = TestClient(create_app(settings))
            clients.append(client)
            keys.append(
                client.post("/admin/users", json={"name": name}, headers={"X-Admin-Token": "t"}).json()["api_key"]
            )
        for turn in (0, 1, 0, 1):
            client, key, other = clients[turn], keys[turn], clients[1 - turn]
            response = client.post("/upload/", files={"file": ("s.wav", short_stereo)}, headers={"X-API-Key": key})
            assert response.status_code == 200, f"app {turn}: {response.status_code} {response.text}"
            upload_id = response.json()["upload_id"]
            status = client.get(f"/status/{upload_id}", headers={"X-API-Key": key}).json()
            assert status["status"] == "done", status
            ctx = client.app.state.ctx  # type: ignore[attr-defined]
            assert ctx.files.part_path(upload_id, "result").exists()
            assert other.app.state.ctx.store.get_job(upload_id) is None  # type: ignore[attr-defined]
        for client in clients:
            jobs = client.app.state.ctx.store.counts_by_status()  # type: ignore[attr-defined]
            assert jobs.get("done") == 2, jobs
    finally:
        for client in clients:
            client.close()
            client.app.state.ctx.store.engine.dispose()  # type: ignore[attr-defined]


def test_diarization_backend_is_the_default_of_every_job_that_does_not_choose(
    make_sqlite_api: Callable[..., ApiClient], jfk: bytes
) -> None:
    """``DIARIZATION_BACKEND=none``: an upload without (or with a blank) ``diarization`` gets none, one that
    asks for the embedded diarizer gets it; /health names the setting."""
    api = make_sqlite_api(diarization_backend="none")
    assert api.get("/health").json()["diarization"] == "none"
    key = api.new_user()
    backends = {}
    for fields in ({}, {"diarization": " "}, {"diarization": "embedded"}):
        response = api.upload(key, jfk, "jfk.flac", fields)
        assert response.status_code == 200, response.text
        result = api.get(f"/results/{response.json()['upload_id']}", headers={"X-API-Key": key}).json()
        assert result["status"] == "done" and result["transcript"]
        backends[fields.get("diarization", "absent")] = (result["model"]["diarization"], len(result["speakers"]))
    assert backends == {"absent": ("none", 0), " ": ("none", 0), "embedded": ("embedded", 1)}
