"""API keys, isolation between users, and the admin endpoint (both databases)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from api_helpers import ADMIN_TOKEN, ApiClient, DoneJob, assert_error
from sqlalchemy import text

PROTECTED = [
    ("GET", "/jobs"),
    ("GET", "/status/{id}"),
    ("GET", "/results/{id}"),
    ("GET", "/labels/{id}"),
    ("POST", "/labels/{id}"),
    ("GET", "/audio/{id}"),
    ("DELETE", "/results/{id}"),
    ("POST", "/upload/"),
    ("POST", "/transcribe"),
]


@pytest.mark.parametrize("key", [None, "", "pk_not-a-real-key", "  "])
def test_no_key_or_a_bad_key_is_401(done: DoneJob, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    for method, path in PROTECTED:
        kwargs: dict[str, object] = {}
        if method == "POST" and "labels" in path:
            kwargs["json"] = {"SPEAKER_00": "Mallory"}
        if path in ("/upload/", "/transcribe"):
            kwargs["files"] = {"file": ("a.wav", done.audio[:1000])}
        response = done.api.request(method, path.format(id=done.upload_id), headers=headers, **kwargs)  # type: ignore[arg-type]
        assert_error(response, 401, mentions="key")
    # nothing happened to the job
    assert done.api.get(f"/status/{done.upload_id}", headers=done.headers).json()["status"] == "done"
    assert done.api.ctx.store.labels(done.upload_id) == {}


def test_another_user_cannot_see_or_touch_the_job(done: DoneJob) -> None:
    job = done.upload_id
    for method, path, params in [
        ("GET", f"/status/{job}", {}),
        ("GET", f"/results/{job}", {}),
        ("GET", f"/results/{job}", {"format": "srt"}),
        ("GET", f"/audio/{job}", {}),
        ("GET", f"/labels/{job}", {}),
        ("DELETE", f"/results/{job}", {}),
    ]:
        response = done.api.request(method, path, params=params, headers=done.other_headers)
        body = assert_error(response, 404)
        # the same answer as for an id that does not exist: nothing to probe
        unknown = done.api.request(
            method, path.replace(job, "00000000-0000-4000-8000-000000000000"), params=params, headers=done.other_headers
        )
        assert unknown.status_code == 404
        assert body["detail"].replace(job, "ID") == unknown.json()["detail"].replace(
            "00000000-0000-4000-8000-000000000000", "ID"
        )
    response = done.api.post(f"/labels/{job}", json={"SPEAKER_00": "Mallory"}, headers=done.other_headers)
    assert_error(response, 404)
    # the owner's job is untouched
    assert done.api.get(f"/status/{job}", headers=done.headers).json()["status"] == "done"
    assert done.api.get(f"/results/{job}", headers=done.headers).status_code == 200
    assert done.api.ctx.files.upload_path(job).exists()
    assert done.api.ctx.store.labels(job) == {}


# --- admin -----------------------------------------------------------------------------------------


def test_admin_creates_a_user_whose_key_works(api: ApiClient) -> None:
    response = api.post("/admin/users", json={"name": "  Erin  "}, headers={"X-Admin-Token": ADMIN_TOKEN})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user_id", "name", "api_key"}
    assert body["name"] == "Erin"
    key = body["api_key"]
    assert len(key) >= 32
    jobs = api.get("/jobs", headers={"X-API-Key": key})
    assert jobs.status_code == 200 and jobs.json()["total"] == 0
    # surrounding spaces in the header are forgiven
    assert api.get("/jobs", headers={"X-API-Key": f" {key} "}).status_code == 200
    # another user gets another key
    other = api.post("/admin/users", json={"name": "Erin"}, headers={"X-Admin-Token": ADMIN_TOKEN}).json()
    assert other["api_key"] != key and other["user_id"] != body["user_id"]


def test_the_key_is_stored_hashed(api: ApiClient) -> None:
    response = api.post("/admin/users", json={"name": "Frank"}, headers={"X-Admin-Token": ADMIN_TOKEN})
    key, user_id = response.json()["api_key"], response.json()["user_id"]
    with api.ctx.store.engine.connect() as conn:
        rows = [tuple(str(v) for v in row) for row in conn.execute(text("SELECT * FROM users"))]
    assert rows
    assert not any(key in value for row in rows for value in row), "the API key is stored in plain text"
    row = next(r for r in rows if user_id in r)
    assert hashlib.sha256(key.encode()).hexdigest() in row


@pytest.mark.parametrize("token", [None, "", "wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]])
def test_admin_with_a_wrong_token_is_403(api: ApiClient, token: str | None) -> None:
    headers = {} if token is None else {"X-Admin-Token": token}
    before = api.ctx.store.count_users()
    response = api.post("/admin/users", json={"name": "Mallory"}, headers=headers)
    assert_error(response, 403)
    assert api.ctx.store.count_users() == before


def test_admin_is_off_without_a_token(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(admin_token=None)
    for token in (ADMIN_TOKEN, "", "anything"):
        response = api.post("/admin/users", json={"name": "Mallory"}, headers={"X-Admin-Token": token})
        assert_error(response, 404, mentions="ADMIN_TOKEN")
    # an empty ADMIN_TOKEN (as in .env.example) also means off
    api = make_api(admin_token="")
    assert_error(api.post("/admin/users", json={"name": "x"}, headers={"X-Admin-Token": ""}), 404)


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * 201}, {"name": 5}, [], {"name": "   "}, {"name": "a\x00b"}, {"name": "a\u202eb"}],
)
def test_admin_rejects_a_bad_name(api: ApiClient, body: object) -> None:
    """A NUL (which PostgreSQL cannot store: it was a 500 there) or another character that is not
    printable text, or a blank name, is a 422 like any other bad name, and no user is made."""
    before = api.ctx.store.count_users()
    response = api.post("/admin/users", json=body, headers={"X-Admin-Token": ADMIN_TOKEN})
    assert_error(response, 422, mentions="name" if isinstance(body, dict) else None)
    assert api.ctx.store.count_users() == before
