"""Status, the job list, results in every format, labels, audio, deletion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, HTTPException, Query, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from proxyai.api.deps import (
    BAD_INPUT,
    JSON_BODY,
    KEY_REQUIRED,
    OWNED_JOB,
    RATE_LIMITED,
    Ctx,
    CurrentUser,
    OwnedJob,
    rate_limit,
)
from proxyai.api.schemas import JobList, JobNotDone, Labels, Result, problem
from proxyai.api.schemas import Status as StatusBody
from proxyai.api.text import bad_character
from proxyai.jobs import ACTIVE, Status
from proxyai.pipeline.audio import AudioError, probe
from proxyai.pipeline.formats import CONTENT_TYPES, FORMATS, apply_names, render
from proxyai.store.db import Job

router = APIRouter(tags=["jobs"])


@router.get("/status/{upload_id}", response_model=StatusBody, responses=OWNED_JOB)
async def status(job: OwnedJob) -> StatusBody:
    return StatusBody.of(job)


@router.get("/jobs", response_model=JobList, responses={**KEY_REQUIRED, **BAD_INPUT})
def jobs(
    ctx: Ctx,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JobList:
    """The caller's jobs, newest first."""
    rows, total = ctx.store.list_jobs(user.id, limit, offset)
    return JobList(items=[StatusBody.of(j) for j in rows], total=total, limit=limit, offset=offset)


def _result(ctx: Ctx, job: Job) -> dict[str, Any]:
    if job.status != Status.DONE:
        failed = job.status == Status.FAILED
        status_code = 409 if failed else 202
        detail = f"the job failed: {job.error}" if failed else f"the job is {job.status}, not done yet"
        raise HTTPException(status_code, detail, headers={"X-Job-Status": job.status})
    result = ctx.files.read_json(job.id, "result")
    if result is None:
        raise HTTPException(410, "the results of this job are gone")
    return dict(result)


@router.get(
    "/results/{upload_id}",
    dependencies=[rate_limit("results", per_key=True)],
    response_model=Result,  # the schema; the body is sent as read (results are large, checked by tests)
    responses={
        200: {
            "description": "the result (JSON), or the file in the asked format",
            "content": {
                t.split(";")[0]: {"schema": {"type": "string"}} for f, t in CONTENT_TYPES.items() if f != "json"
            },
        },
        202: problem("not done yet: header X-Job-Status says queued or processing", JobNotDone),
        409: problem("the job failed: detail holds its message", JobNotDone),
        410: problem("the results of this job are gone"),
        **OWNED_JOB,
        **RATE_LIMITED,
    },
)
def results(
    ctx: Ctx, job: OwnedJob, format: Annotated[str | None, Query(json_schema_extra={"enum": list(FORMATS)})] = None
) -> Response:
    """The whole result, speaker names applied (``transcript`` is the segments); ``?format=`` for a file."""
    if format is not None and format not in FORMATS:
        raise HTTPException(422, f"format must be one of {', '.join(FORMATS)}")
    result = _result(ctx, job)
    names = ctx.store.labels(job.id)
    if format is None:
        body = apply_names(result, names)
        body = {"upload_id": job.id, "status": job.status, "transcript": body["segments"], **body}
        return JSONResponse(body)
    stem = Path(job.filename).stem or "transcript"
    safe = re.sub(r"[^\w.-]+", "_", stem)[:80] or "transcript"
    text = render(result, format, names, file_id=safe)
    return Response(
        text,
        media_type=CONTENT_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{safe}.{format}"'},
    )


@router.delete("/results/{upload_id}", status_code=204, responses=OWNED_JOB)
def delete(ctx: Ctx, job: OwnedJob) -> Response:
    """The job, its upload and its results are gone."""
    ctx.store.delete_job(job.id)
    ctx.files.delete(job.id)
    return Response(status_code=204)


@router.get("/labels/{upload_id}", response_model=Labels, responses=OWNED_JOB)
def get_labels(ctx: Ctx, job: OwnedJob) -> Labels:
    return Labels(upload_id=job.id, labels=ctx.store.labels(job.id))


@router.post(
    "/labels/{upload_id}",
    response_model=Labels,
    responses={
        **OWNED_JOB,
        409: problem("the job is not done yet, or failed"),
        410: problem("the results of this job are gone"),
        **JSON_BODY,
        422: problem("a speaker this job does not have, or a bad name"),
    },
)
def set_labels(
    ctx: Ctx,
    job: OwnedJob,
    names: Annotated[dict[str, Any], Body(examples=[{"SPEAKER_00": "Diane"}])],
) -> Labels:
    """Name speakers; results and every format use the names from then on."""
    if job.status in ACTIVE:
        raise HTTPException(409, f"the job is {job.status}: speakers can be named once it is done")
    result = _result(ctx, job)
    known = {s["id"] for s in result.get("speakers", [])}
    clean: dict[str, str] = {}
    for speaker, name in names.items():
        if speaker not in known:
            raise HTTPException(422, f"unknown speaker {speaker!r}; this job has {', '.join(sorted(known)) or 'none'}")
        if not isinstance(name, str):
            raise HTTPException(422, f"the name for {speaker} must be a string")
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise HTTPException(422, f"the name for {speaker} must be 1 to 100 characters")
        bad = bad_character(name)
        if bad:
            raise HTTPException(422, f"the name for {speaker} has a character that is not printable text ({bad})")
        clean[speaker] = name
    return Labels(upload_id=job.id, labels=ctx.store.set_labels(job.id, clean))


_AUDIO = {t: {"schema": {"type": "string", "format": "binary"}} for t in ("audio/*", "application/octet-stream")}


@router.get(
    "/audio/{upload_id}",
    response_class=FileResponse,
    responses={
        200: {"description": "the uploaded file, typed from its probed container", "content": _AUDIO},
        206: {"description": "a byte range", "content": _AUDIO},
        400: problem("a Range header that cannot be read"),
        **OWNED_JOB,
        410: problem("the upload is gone"),
        416: problem("a range outside the file"),
    },
)
def audio(ctx: Ctx, job: OwnedJob, range: Annotated[str | None, Header()] = None) -> FileResponse:
    """The uploaded file, with HTTP Range support."""
    path = ctx.files.upload_path(job.id)
    if not path.exists():
        raise HTTPException(410, "the upload is gone")
    if range is not None:  # refuse bad ranges here, as JSON, rather than in the file response
        size = path.stat().st_size
        try:
            FileResponse._parse_range_header(range, size)
        except MalformedRangeHeader as exc:
            raise HTTPException(400, f"bad Range header: {exc.content}") from None
        except RangeNotSatisfiable:
            raise HTTPException(
                416, f"the range is outside the file ({size} bytes)", headers={"Content-Range": f"bytes */{size}"}
            ) from None
    return FileResponse(path, media_type=audio_type(path), filename=job.filename, content_disposition_type="inline")


# ffmpeg's container names → the type sent with the audio (never guessed from the user's file name)
_CONTAINER_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
    "matroska,webm": "audio/webm",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
}


def audio_type(path: Path) -> str:
    """The Content-Type of an upload, from its probed container."""
    try:
        container = probe(path).container
    except AudioError:
        return "application/octet-stream"
    return _CONTAINER_TYPES.get(container, "application/octet-stream")
