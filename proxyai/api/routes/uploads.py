"""``POST /upload/`` and ``POST /transcribe``: stream the file to disk, probe it, queue the job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from proxyai.api.deps import Ctx, CurrentUser, Queue, rate_limit
from proxyai.api.schemas import UploadResponse
from proxyai.api.upload import receive_upload, storage_error
from proxyai.jobs import JobOptions, OptionsError
from proxyai.pipeline.audio import AudioError, probe

router = APIRouter(tags=["uploads"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "the file is larger than MAX_FILE_SIZE, or longer than MAX_DURATION"},
    415: {"description": "the file is not audio (judged by its content)"},
    422: {"description": "a bad form field"},
    429: {"description": "too many uploads from this address"},
    503: {"description": "the job queue or the upload storage is unavailable"},
    507: {"description": "the upload storage is full"},
}


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
            options = JobOptions.parse(received.fields)
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
        summary="Upload a recording (multipart field 'file'; optional language, task, num_speakers, "
        "min_speakers, max_speakers, diarization, channels)",
    )
