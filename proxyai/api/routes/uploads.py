"""``POST /upload/`` and ``POST /transcribe``: stream the file to disk, probe it, queue the job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

import structlog
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from proxyai.api.deps import KEY_REQUIRED, Ctx, CurrentUser, Queue, rate_limit
from proxyai.api.schemas import Responses, UploadResponse, problem
from proxyai.api.upload import receive_upload, storage_error
from proxyai.jobs import JobOptions, OptionsError
from proxyai.pipeline.audio import AudioError, probe

router = APIRouter(tags=["uploads"])

RESPONSES: Responses = {
    400: problem("a multipart body that cannot be read"),
    **KEY_REQUIRED,
    413: problem("the file is larger than MAX_FILE_SIZE, or longer than MAX_DURATION"),
    415: problem("the file is not audio (judged by its content)"),
    422: problem("not a multipart form with a 'file', or a bad form field"),
    429: problem("too many uploads from this address or with this key"),
    503: problem("the job queue or the upload storage is unavailable"),
    507: problem("the upload storage is full"),
}


def _form_schema() -> dict[str, Any]:
    """The multipart form (read by :func:`receive_upload`, not by FastAPI, so described here): the
    ``file`` and the :class:`JobOptions` fields, all optional but the file."""
    speakers = {"type": "integer", "minimum": 1, "maximum": 50}
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "the recording (audio or video with sound)"},
        "language": {"type": "string", "description": "a language code (en, ru, de, …); detected when absent"},
        "num_speakers": speakers,
        "min_speakers": speakers,
        "max_speakers": speakers,
    }
    for name in ("task", "diarization", "channels"):
        choices = get_args(JobOptions.model_fields[name].annotation)
        properties[name] = {"type": "string", "enum": list(choices), "default": JobOptions.model_fields[name].default}
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def create_upload(request: Request, ctx: Ctx, celery: Queue, user: CurrentUser) -> UploadResponse:
    from proxyai.worker.tasks import enqueue

    try:
        fd, tmp = ctx.files.new_upload()
    except OSError as exc:
        raise storage_error(exc) from None
    try:
        try:
            received = await receive_upload(request, fd, tmp, ctx.settings.max_file_size)
        finally:
            os.close(fd)
        try:
            options = JobOptions.parse(received.fields, {"diarization": ctx.settings.diarization_backend})
        except OptionsError as exc:
            raise HTTPException(422, str(exc)) from None
        if received.size == 0:
            raise HTTPException(415, "the file is empty")
        try:
            info = await run_in_threadpool(probe, tmp)
        except AudioError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise HTTPException(415, f"unsupported media: {reason}; upload audio or video with sound") from None
        if info.duration and info.duration > ctx.settings.max_duration:
            raise HTTPException(
                413,
                f"the recording is {info.duration:.0f} s long; one job holds at most "
                f"{ctx.settings.max_duration:g} s (MAX_DURATION): split it",
            )
        correlation_id = request.state.correlation_id
        job = await run_in_threadpool(
            ctx.store.create_job,
            user.id,
            received.filename or "audio",
            received.size,
            info.duration or None,
            options.stored(),
            correlation_id,
        )
        try:
            ctx.files.keep_upload(tmp, job.id)
        except OSError as exc:
            await run_in_threadpool(ctx.store.delete_job, job.id)
            raise storage_error(exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    request.state.upload_id = job.id
    try:
        await run_in_threadpool(enqueue, celery, job.id, correlation_id, job.duration)
    except Exception as exc:  # the broker is down: say so, keep nothing half-done
        structlog.get_logger("proxyai.api").exception("could not queue the job", upload_id=job.id)
        await run_in_threadpool(ctx.store.fail_job, job.id, f"could not queue the job: {exc}")
        raise HTTPException(503, "the job queue is unreachable; try again shortly") from None
    return UploadResponse(upload_id=job.id)


for path in ("/upload/", "/transcribe"):
    router.add_api_route(
        path,
        create_upload,
        methods=["POST"],
        response_model=UploadResponse,
        status_code=200,
        responses=RESPONSES,
        dependencies=[rate_limit("upload", per_key=True)],
        openapi_extra=_form_schema(),
        summary="Upload a recording (multipart field 'file'; optional language, task, num_speakers, "
        "min_speakers, max_speakers, diarization, channels)",
    )
