"""Bad and hostile requests get a 4xx with a JSON ``detail`` (never a 500), on SQLite and PostgreSQL;
every response carries the security headers; the audio is typed from its content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest
from api_helpers import ADMIN_TOKEN, ApiClient, DoneJob, assert_error


@pytest.mark.parametrize("bad_id", ["x", "00000000-0000-0000-0000-00000000000g", "a%00b", "%E2%80%AE", "' OR 1=1 --"])
def test_what_is_not_a_job_id_is_404_before_any_query(api: ApiClient, bad_id: str) -> None:
    key = api.new_user()
    for path in ("/status/{}", "/results/{}", "/labels/{}", "/audio/{}"):
        assert_error(api.get(path.format(bad_id), headers={"X-API-Key": key}), 404)
    assert_error(api.delete(f"/upload/{bad_id}", headers={"X-API-Key": key}), 404)


def test_pagination_is_bounded(api: ApiClient) -> None:
    key = api.new_user()
    for offset in ("99999999999999999999", "-1", "1e3"):
        assert_error(api.get(f"/jobs?offset={offset}", headers={"X-API-Key": key}), 422, mentions="offset")
    assert api.get("/jobs?offset=1000000000", headers={"X-API-Key": key}).json()["items"] == []


def test_a_non_ascii_admin_token_is_403(api: ApiClient) -> None:
    for token in ("токен".encode(), ADMIN_TOKEN.encode() + b"\xe9"):
        response = api.post("/admin/users", json={"name": "x"}, headers={"X-Admin-Token": token})
        assert_error(response, 403)


def test_file_names_keep_only_printable_text(api: ApiClient, short_stereo: bytes) -> None:
    key = api.new_user()
    boundary = b"b0undary"
    name = "call\u202egnp.exe\x00\u2028.wav".encode()  # raw in the form, as a hostile client sends it
    body = (
        b"--"
        + boundary
        + b'\r\nContent-Disposition: form-data; name="file"; filename="'
        + name
        + b'"\r\n\r\n'
        + short_stereo
        + b"\r\n--"
        + boundary
        + b"--\r\n"
    )
    response = api.post(
        "/upload/",
        content=body,
        headers={"X-API-Key": key, "content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert response.status_code == 200, response.text
    status = api.get(f"/status/{response.json()['upload_id']}", headers={"X-API-Key": key}).json()
    assert status["filename"] == "call_gnp.exe__.wav"


def test_every_response_has_the_security_headers(done: DoneJob) -> None:
    for response in (
        done.api.get("/health"),
        done.api.get("/"),
        done.api.get(f"/status/{done.upload_id}", headers=done.headers),
        done.api.get("/status/nope", headers=done.headers),
        done.api.get(f"/audio/{done.upload_id}", headers=done.headers),
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["x-frame-options"] == "DENY", response.url
    assert "frame-ancestors 'none'" in done.api.get("/").headers["content-security-policy"]


def test_the_audio_is_typed_from_its_content_not_its_name(api: ApiClient, short_stereo: bytes, tmp_path: Path) -> None:
    """A WAV uploaded as ``page.html`` is served as audio/wav (never text/html, with nosniff)."""
    key = api.new_user()
    response = api.upload(key, short_stereo, "page.html")
    assert response.status_code == 200, response.text
    audio = api.get(f"/audio/{response.json()['upload_id']}", headers={"X-API-Key": key})
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.content == short_stereo


def test_a_large_json_body_is_413_before_it_is_parsed_or_the_key_checked(api: ApiClient) -> None:
    big = b'{"SPEAKER_00": "' + b"x" * 200_000 + b'"}'
    json_type = {"content-type": "application/json"}
    # declared length over the cap: refused at once, key or no key
    assert_error(api.post("/labels/x", content=big, headers=json_type), 413, mentions="larger than")
    assert_error(api.post("/admin/users", content=big, headers={**json_type, "X-Admin-Token": ADMIN_TOKEN}), 413)

    # no declared length (chunked): cut off as it passes the cap
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    assert_error(api.post("/labels/x", content=chunks(), headers=json_type), 413, mentions="larger than")
    # a small body still reaches the key check
    assert_error(api.post("/labels/x", json={"SPEAKER_00": "Ann"}), 401)


def test_form_fields_are_capped_in_all(api: ApiClient, short_stereo: bytes) -> None:
    key = api.new_user()
    fields = {f"f{i}": "y" * 9_000 for i in range(10)}  # each under the per-field cap, 90 KB together
    response = api.upload(key, short_stereo, "a.wav", fields)
    assert_error(response, 413, mentions="form fields")
    assert api.uploads_folder_files() == []


def test_the_api_docs_load_nothing_from_another_origin(api: ApiClient) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "/docs-assets/swagger-ui.css" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "an asset from another origin"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = api.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert api.get("/redoc").status_code == 404
    assert api.get("/openapi.json").json()["info"]["title"] == "proxyAI"


@pytest.mark.parametrize("blank", [" ", "\t", "  \t "])
def test_a_correlation_id_cut_at_a_space_is_still_a_header_value(sqlite_api: ApiClient, blank: str) -> None:
    """The id is cut to 64 characters; where the cut left whitespace at its end, the echoed header was
    one h11 (uvicorn's HTTP) refuses to send: the client got no response at all."""
    sent = "a" * 63 + blank + "b" * 10
    response = sqlite_api.get("/health", headers={"X-Correlation-ID": sent})
    assert response.status_code == 200
    echoed = response.headers["x-correlation-id"]
    assert echoed == "a" * 63
    h11.Response(status_code=200, headers=[("x-correlation-id", echoed)])  # raises for what h11 cannot send


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/results/{id}", "GET, DELETE"),
        ("PUT", "/labels/{id}", "GET, POST"),
        ("PATCH", "/upload/", "POST"),
        ("DELETE", "/health", "GET"),
    ],
)
def test_a_405_names_every_method_of_the_path(sqlite_api: ApiClient, method: str, path: str, allowed: str) -> None:
    """``Allow`` lists what the path answers, not only the methods of its first route."""
    response = sqlite_api.request(method, path.format(id="00000000-0000-0000-0000-000000000000"))
    assert_error(response, 405)
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize("path", ["/labels/00000000-0000-0000-0000-000000000000", "/admin/users"])
def test_a_json_body_that_is_not_utf8_is_400(sqlite_api: ApiClient, path: str) -> None:
    headers = {"content-type": "application/json", "X-API-Key": sqlite_api.new_user(), "X-Admin-Token": ADMIN_TOKEN}
    assert_error(sqlite_api.post(path, content=b"\xff\xfe{", headers=headers), 400)
