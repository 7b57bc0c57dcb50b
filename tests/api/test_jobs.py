"""The job list, the uploaded audio (with ranges), and deletion (both databases)."""

from __future__ import annotations

from collections.abc import Callable

from api_helpers import ApiClient, DoneJob, assert_error

# --- GET /jobs -------------------------------------------------------------------------------------


def test_jobs_lists_only_the_callers_jobs_newest_first_with_paging(api: ApiClient) -> None:
    carol, dave = api.new_user("carol"), api.new_user("dave")
    carol_id, dave_id = api.new_user_id(carol), api.new_user_id(dave)
    mine = [api.ctx.store.create_job(carol_id, f"talk{i}.wav", 100 + i, 1.0, {}, None).id for i in range(5)]
    other = api.ctx.store.create_job(dave_id, "theirs.wav", 1, 1.0, {}, None).id
    newest_first = mine[::-1]

    body = api.get("/jobs", headers={"X-API-Key": carol}).json()
    assert body["total"] == 5
    assert body["limit"] == 20 and body["offset"] == 0
    assert [j["upload_id"] for j in body["items"]] == newest_first
    assert [j["filename"] for j in body["items"]] == [f"talk{i}.wav" for i in range(4, -1, -1)]
    item = body["items"][0]
    assert item["status"] == "queued" and item["progress"] == 0 and item["error"] is None
    assert {"created_at", "updated_at", "duration", "stage"} <= set(item)

    page = api.get("/jobs", params={"limit": 2, "offset": 1}, headers={"X-API-Key": carol}).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [j["upload_id"] for j in page["items"]] == newest_first[1:3]
    last = api.get("/jobs", params={"limit": 2, "offset": 4}, headers={"X-API-Key": carol}).json()
    assert [j["upload_id"] for j in last["items"]] == newest_first[4:]
    beyond = api.get("/jobs", params={"offset": 50}, headers={"X-API-Key": carol}).json()
    assert beyond["items"] == [] and beyond["total"] == 5

    theirs = api.get("/jobs", headers={"X-API-Key": dave}).json()
    assert theirs["total"] == 1 and [j["upload_id"] for j in theirs["items"]] == [other]


def test_jobs_paging_parameters_are_checked(api: ApiClient) -> None:
    key = api.new_user()
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "many"}):
        response = api.get("/jobs", params=params, headers={"X-API-Key": key})
        assert_error(response, 422, mentions=next(iter(params)))
    assert api.get("/jobs", params={"limit": 200}, headers={"X-API-Key": key}).status_code == 200


def test_the_finished_job_is_in_its_owners_list_only(done: DoneJob) -> None:
    mine = done.api.get("/jobs", headers=done.headers).json()
    assert done.upload_id in [j["upload_id"] for j in mine["items"]]
    entry = next(j for j in mine["items"] if j["upload_id"] == done.upload_id)
    assert entry["status"] == "done" and entry["progress"] == 100
    theirs = done.api.get("/jobs", headers=done.other_headers).json()
    assert done.upload_id not in [j["upload_id"] for j in theirs["items"]]


# --- GET /audio ------------------------------------------------------------------------------------


def test_audio_is_the_uploaded_file(done: DoneJob) -> None:
    response = done.api.get(f"/audio/{done.upload_id}", headers=done.headers)
    assert response.status_code == 200
    assert response.content == done.audio
    assert response.headers["content-type"].startswith("audio/")
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == len(done.audio)


def test_audio_serves_a_byte_range(done: DoneJob) -> None:
    response = done.api.get(f"/audio/{done.upload_id}", headers={**done.headers, "Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == done.audio[100:200]
    assert response.headers["content-range"] == f"bytes 100-199/{len(done.audio)}"
    assert response.headers["content-length"] == "100"
    tail = done.api.get(f"/audio/{done.upload_id}", headers={**done.headers, "Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == done.audio[-50:]


def test_audio_range_past_the_end_is_a_json_416(done: DoneJob) -> None:
    """Every error of the API is JSON with a ``detail`` (proxyai/api/app.py's promise)."""
    response = done.api.get(f"/audio/{done.upload_id}", headers={**done.headers, "Range": "bytes=99999999-"})
    assert response.headers.get("content-range") == f"bytes */{len(done.audio)}"
    assert_error(response, 416)


# --- DELETE /results -------------------------------------------------------------------------------


def test_delete_removes_the_job_its_upload_and_its_results(
    make_api: Callable[..., ApiClient], short_stereo: bytes
) -> None:
    api = make_api()
    key = api.new_user()
    headers = {"X-API-Key": key}
    response = api.upload(key, short_stereo, "stereo.wav")
    assert response.status_code == 200, response.text
    upload_id = response.json()["upload_id"]
    upload_file = api.ctx.files.upload_path(upload_id)
    result_dir = api.ctx.files.result_dir(upload_id)
    assert upload_file.read_bytes() == short_stereo
    assert (result_dir / "result.json").is_file()
    api.post(f"/labels/{upload_id}", json={"SPEAKER_00": "Left"}, headers=headers).raise_for_status()

    response = api.delete(f"/results/{upload_id}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""

    assert not upload_file.exists()
    assert not result_dir.exists()
    assert api.ctx.store.get_job(upload_id) is None
    assert api.ctx.store.labels(upload_id) == {}
    for path in (f"/status/{upload_id}", f"/results/{upload_id}", f"/audio/{upload_id}", f"/labels/{upload_id}"):
        assert_error(api.get(path, headers=headers), 404)
    assert api.get("/jobs", headers=headers).json()["total"] == 0
    assert_error(api.delete(f"/results/{upload_id}", headers=headers), 404)
