"""Speaker names: validation, storage, and their use in the results and every format (both databases)."""

from __future__ import annotations

import json

import pytest
from api_helpers import ApiClient, DoneJob, assert_error

XSS = "<img src=x onerror=alert(1)>"


def _set(done: DoneJob, names: object) -> tuple[int, dict[str, object]]:
    response = done.api.post(f"/labels/{done.upload_id}", json=names, headers=done.headers)
    return response.status_code, response.json()


def _stored(done: DoneJob) -> dict[str, str]:
    response = done.api.get(f"/labels/{done.upload_id}", headers=done.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["upload_id"] == done.upload_id
    labels: dict[str, str] = body["labels"]
    return labels


def _render(done: DoneJob, fmt: str) -> str:
    response = done.api.get(f"/results/{done.upload_id}", params={"format": fmt}, headers=done.headers)
    assert response.status_code == 200
    return response.text


def test_no_names_at_first(done: DoneJob) -> None:
    assert _stored(done) == {}


def test_a_name_is_trimmed_stored_and_used_everywhere(done: DoneJob) -> None:
    status, body = _set(done, {"SPEAKER_00": "  Diane "})
    assert status == 200, body
    assert body == {"upload_id": done.upload_id, "labels": {"SPEAKER_00": "Diane"}}
    assert _stored(done) == {"SPEAKER_00": "Diane"}

    result = done.api.get(f"/results/{done.upload_id}", headers=done.headers).json()
    assert result["speakers"] == [
        {"id": "SPEAKER_00", "label": "Diane"},
        {"id": "SPEAKER_01", "label": "SPEAKER_01"},
    ]
    # segments keep the speaker ids (names are applied through speakers[].label)
    assert {s["speaker"] for s in result["transcript"]} == {"SPEAKER_00", "SPEAKER_01"}

    srt, vtt, txt, rttm = (_render(done, fmt) for fmt in ("srt", "vtt", "txt", "rttm"))
    for text in (srt, txt):
        assert "Diane: " in text and "SPEAKER_01: " in text
        assert "SPEAKER_00" not in text
    assert "<v Diane>" in vtt and "SPEAKER_00" not in vtt
    assert " Diane " in rttm and "SPEAKER_00" not in rttm
    data = json.loads(_render(done, "json"))
    assert {s["id"]: s["label"] for s in data["speakers"]} == {"SPEAKER_00": "Diane", "SPEAKER_01": "SPEAKER_01"}

    # renaming replaces the name; the other speaker can be named too
    status, body = _set(done, {"SPEAKER_00": "Diane K.", "SPEAKER_01": "Marc"})
    assert status == 200
    assert body["labels"] == {"SPEAKER_00": "Diane K.", "SPEAKER_01": "Marc"}
    txt = _render(done, "txt")
    assert "Diane K.: " in txt and "Marc: " in txt and "SPEAKER_0" not in txt
    # RTTM speaker names are one token
    assert " Diane_K. " in _render(done, "rttm")


def test_markup_is_stored_literally_and_escaped_in_vtt(done: DoneJob) -> None:
    status, body = _set(done, {"SPEAKER_01": XSS})
    assert status == 200, body
    assert _stored(done) == {"SPEAKER_01": XSS}
    result = done.api.get(f"/results/{done.upload_id}", headers=done.headers).json()
    assert {"id": "SPEAKER_01", "label": XSS} in result["speakers"]
    assert f"{XSS}: " in _render(done, "txt")
    vtt = _render(done, "vtt")
    assert "<img" not in vtt
    assert "<v &lt;img src=x onerror=alert(1)&gt;>" in vtt


@pytest.mark.parametrize(
    ("names", "mentions"),
    [
        ({"SPEAKER_07": "Ghost"}, "SPEAKER_07"),
        ({"speaker_00": "Case"}, "speaker_00"),
        ({"SPEAKER_00": ""}, "SPEAKER_00"),
        ({"SPEAKER_00": "   "}, "SPEAKER_00"),
        ({"SPEAKER_00": "x" * 101}, "100"),
        ({"SPEAKER_00": "Di\x00ane"}, "not printable"),
        ({"SPEAKER_00": "Di\nane"}, "not printable"),
        ({"SPEAKER_00": "Di\x1bane"}, "not printable"),
        ({"SPEAKER_00": "Di\x7fane"}, "not printable"),
        ({"SPEAKER_00": "Di\x85ane"}, "not printable"),
        ({"SPEAKER_00": "Di\u2028ane"}, "U+2028"),
        ({"SPEAKER_00": "Di\u202eane"}, "U+202E"),
        ({"SPEAKER_00": "Di\u00a0ane"}, "U+00A0"),
        ({"SPEAKER_00": "\u200b\u200b"}, "U+200B"),
        ({"SPEAKER_00": "Di\ud800ane"}, "U+D800"),
        ({"SPEAKER_00": 7}, "string"),
        ({"SPEAKER_00": None}, "string"),
    ],
    ids=[
        "unknown",
        "wrong-case",
        "empty",
        "blank",
        "101-chars",
        "nul",
        "newline",
        "escape",
        "del",
        "c1-control",
        "line-separator",
        "bidi-override",
        "no-break-space",
        "zero-width-only",
        "lone-surrogate",
        "number",
        "null",
    ],
)
def test_bad_names_are_422_and_nothing_is_stored(done: DoneJob, names: dict[str, object], mentions: str) -> None:
    # a good name in the same request is not stored either
    body = {"SPEAKER_01": "Marc", **names}
    raw = json.dumps(body).encode()  # ASCII with \u escapes: a lone surrogate arrives as JSON allows
    headers = {**done.headers, "content-type": "application/json"}
    response = done.api.post(f"/labels/{done.upload_id}", content=raw, headers=headers)
    assert_error(response, 422, mentions=mentions)
    assert _stored(done) == {}


def test_a_body_that_is_not_an_object_is_422(done: DoneJob) -> None:
    for body in (["SPEAKER_00", "Diane"], "Diane"):
        response = done.api.post(f"/labels/{done.upload_id}", json=body, headers=done.headers)
        assert_error(response, 422)
    response = done.api.post(
        f"/labels/{done.upload_id}", content=b"{not json", headers={**done.headers, "content-type": "application/json"}
    )
    assert_error(response, 422)
    assert _stored(done) == {}


def test_a_name_of_100_characters_is_accepted(done: DoneJob) -> None:
    name = "Ä" * 100
    status, body = _set(done, {"SPEAKER_00": name})
    assert status == 200, body
    assert _stored(done) == {"SPEAKER_00": name}


def test_labels_of_a_job_not_done_are_refused(api: ApiClient) -> None:
    """Naming speakers needs the result: a queued job has none yet, so nothing is stored. A refusal is a
    client error (4xx): a 2xx such as 202 Accepted would tell the client the names were taken."""
    key = api.new_user()
    job = api.ctx.store.create_job(api.new_user_id(key), "talk.wav", 10, 1.0, {}, None)
    response = api.post(f"/labels/{job.id}", json={"SPEAKER_00": "Diane"}, headers={"X-API-Key": key})
    assert response.status_code != 200
    assert response.headers["content-type"].startswith("application/json")
    assert "detail" in response.json()
    assert api.ctx.store.labels(job.id) == {}
    assert 400 <= response.status_code < 500, f"a refused write answered {response.status_code}: {response.text}"


def test_labels_of_a_failed_job_are_refused(api: ApiClient) -> None:
    key = api.new_user()
    job = api.ctx.store.create_job(api.new_user_id(key), "talk.wav", 10, 1.0, {}, None)
    api.ctx.store.fail_job(job.id, "the file cannot be decoded as audio")
    response = api.post(f"/labels/{job.id}", json={"SPEAKER_00": "Diane"}, headers={"X-API-Key": key})
    assert_error(response, 409, mentions="failed")
    assert api.ctx.store.labels(job.id) == {}


def test_names_in_any_script_are_accepted(done: DoneJob) -> None:
    names = {"SPEAKER_00": "Анна-Мария Zoë 🎤", "SPEAKER_01": "李雷 José O'Neil"}
    response = done.api.post(f"/labels/{done.upload_id}", json=names, headers=done.headers)
    assert response.status_code == 200, response.text
    assert _stored(done) == names
