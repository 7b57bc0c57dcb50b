"""The full flow on a real recording: upload → status → results in every format (both databases)."""

from __future__ import annotations

import io
import json
import re
import wave
from datetime import datetime
from pathlib import Path

import pytest
from api_helpers import DIALOGUE, ApiClient, DoneJob, assert_error


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def test_upload_returns_only_the_id_and_echoes_the_correlation_id(done: DoneJob) -> None:
    response = done.upload_response
    assert response.json() == {"upload_id": done.upload_id}
    assert response.headers["x-correlation-id"] == done.correlation_id
    # the job row keeps the request's correlation id (it follows the job into the tasks' logs)
    job = done.api.ctx.store.get_job(done.upload_id)
    assert job is not None and job.correlation_id == done.correlation_id


def test_status_of_a_finished_job(done: DoneJob) -> None:
    response = done.api.get(f"/status/{done.upload_id}", headers=done.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["upload_id"] == done.upload_id
    assert body["status"] == "done"
    assert body["stage"] == "done"
    assert body["progress"] == 100
    assert body["error"] is None
    assert body["filename"] == DIALOGUE
    created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
    updated = datetime.fromisoformat(body["updated_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and updated.tzinfo is not None
    assert created <= updated
    with wave.open(io.BytesIO(done.audio)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert body["duration"] == pytest.approx(seconds, abs=0.05)


def test_results_json_holds_transcript_diarization_speakers_and_language(done: DoneJob, shared_audio: Path) -> None:
    response = done.api.get(f"/results/{done.upload_id}", headers=done.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["upload_id"] == done.upload_id
    assert body["status"] == "done"
    assert body["language"] == "en"
    assert [s["id"] for s in body["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert [s["label"] for s in body["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]

    transcript = body["transcript"]
    assert transcript == body["segments"]
    assert len(transcript) >= 5
    for seg in transcript:
        assert 0 <= seg["start"] < seg["end"] <= body["duration"] + 0.5
        assert seg["speaker"] in {"SPEAKER_00", "SPEAKER_01"}
        assert seg["text"].strip()
    assert {seg["speaker"] for seg in transcript} == {"SPEAKER_00", "SPEAKER_01"}

    turns = body["diarization"]
    assert turns, "no speaker turns"
    assert {t["speaker"] for t in turns} == {"SPEAKER_00", "SPEAKER_01"}
    for turn in turns:
        assert turn["start"] < turn["end"]

    # the words are the recording's: most of the reference words are recognised
    reference = json.loads((shared_audio / "dialogue_2spk.json").read_text())
    expected = _words(" ".join(s["text"] for s in reference["segments"]))
    heard = _words(" ".join(s["text"] for s in transcript))
    assert len(expected & heard) / len(expected) > 0.6, heard


def test_the_result_is_what_the_openapi_schema_says(done: DoneJob) -> None:
    """``Result`` is the documented schema of ``GET /results`` and every field of a real result fits it
    (nothing missing, nothing undocumented): the API does not say one thing and send another."""
    from proxyai.api.schemas import Result

    body = done.api.get(f"/results/{done.upload_id}", headers=done.headers).json()
    parsed = Result.model_validate(body)
    assert set(body) == set(Result.model_fields)
    assert set(body["segments"][0]) <= set(type(parsed.segments[0]).model_fields)
    assert set(body["segments"][0]["words"][0]) == set(type(parsed.segments[0].words[0]).model_fields)
    assert {"decode", "vad", "asr", "diarization", "merge"} <= set(parsed.timings), parsed.timings
    spec = done.api.get("/openapi.json").json()
    ok = spec["paths"]["/results/{upload_id}"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Result"}
    assert "text/vtt" in ok
    segment = spec["components"]["schemas"]["Segment"]["properties"]
    assert {"start", "end", "speaker", "text", "words"} <= set(segment)


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("srt", "application/x-subrip"),
        ("vtt", "text/vtt"),
        ("txt", "text/plain"),
        ("rttm", "text/plain"),
        ("json", "application/json"),
    ],
)
def test_results_in_each_format(done: DoneJob, fmt: str, content_type: str) -> None:
    response = done.api.get(f"/results/{done.upload_id}", params={"format": fmt}, headers=done.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["content-disposition"] == f'attachment; filename="dialogue_2spk.{fmt}"'
    text = response.text
    assert text.strip()
    if fmt == "srt":
        first = text.split("\n\n")[0].splitlines()
        assert first[0] == "1"
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", first[1])
        assert re.match(r"SPEAKER_0[01]: \S", first[2])
    elif fmt == "vtt":
        assert text.startswith("WEBVTT\n")
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n<v SPEAKER_0[01]>\S", text)
    elif fmt == "txt":
        for line in text.splitlines():
            assert re.match(r"\[\d\d:\d\d:\d\d\] SPEAKER_0[01]: \S", line), line
    elif fmt == "rttm":
        lines = text.splitlines()
        assert lines
        for line in lines:
            fields = line.split()
            assert fields[:3] == ["SPEAKER", "dialogue_2spk", "1"], line
            assert float(fields[4]) >= 0 and fields[7] in {"SPEAKER_00", "SPEAKER_01"}
    else:
        data = json.loads(text)
        assert {s["id"] for s in data["speakers"]} == {"SPEAKER_00", "SPEAKER_01"}
        assert data["segments"] and data["language"] == "en"


def test_unknown_format_is_422(done: DoneJob) -> None:
    response = done.api.get(f"/results/{done.upload_id}", params={"format": "pdf"}, headers=done.headers)
    assert_error(response, 422, mentions="format")


# --- jobs that are not done ------------------------------------------------------------------------


def _job_row(api: ApiClient, key: str, status: str = "queued", error: str | None = None) -> str:
    job = api.ctx.store.create_job(api.new_user_id(key), "talk.wav", 1234, 3.0, {}, "corr-x")
    if status == "failed":
        api.ctx.store.fail_job(job.id, error or "boom")
    elif status != "queued":
        api.ctx.store.update_job(job.id, status=status, stage="transcribing", progress=40)
    return job.id


@pytest.mark.parametrize("status", ["queued", "processing"])
def test_results_of_an_unfinished_job_are_202_with_its_status(api: ApiClient, status: str) -> None:
    key = api.new_user()
    job_id = _job_row(api, key, status)
    response = api.get(f"/results/{job_id}", headers={"X-API-Key": key})
    body = assert_error(response, 202)
    assert body["status"] == status
    assert status in body["detail"]
    # every format says the same
    response = api.get(f"/results/{job_id}", params={"format": "srt"}, headers={"X-API-Key": key})
    assert assert_error(response, 202)["status"] == status
    # and the status endpoint shows the job's progress, never 100 before it is done
    status_body = api.get(f"/status/{job_id}", headers={"X-API-Key": key}).json()
    assert status_body["status"] == status
    assert status_body["progress"] < 100


def test_results_of_a_failed_job_are_409_with_its_message(api: ApiClient) -> None:
    key = api.new_user()
    job_id = _job_row(api, key, "failed", "the file cannot be decoded as audio: truncated")
    body = assert_error(api.get(f"/results/{job_id}", headers={"X-API-Key": key}), 409)
    assert "the file cannot be decoded as audio: truncated" in body["detail"]
    status = api.get(f"/status/{job_id}", headers={"X-API-Key": key}).json()
    assert status["status"] == "failed"
    assert status["error"] == "the file cannot be decoded as audio: truncated"


def test_results_of_an_unknown_id_are_404(api: ApiClient) -> None:
    key = api.new_user()
    for path in ("/results/nope", "/results/00000000-0000-0000-0000-000000000000", "/status/nope"):
        assert_error(api.get(path, headers={"X-API-Key": key}), 404)
