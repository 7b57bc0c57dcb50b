"""Tasks take a job id, re-read the job, call one pipeline stage, save its part atomically. Whichever
part finishes second merges; running any task twice gives the same single result."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import structlog
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy.exc import OperationalError

from proxyai.config import Settings
from proxyai.context import Context, pipeline_options, time_limits, worker_queues
from proxyai.jobs import PARTS, STAGE_OF, JobOptions, Part, Stage, Status
from proxyai.observability import (
    DIARIZATION_SECONDS,
    JOB_STAGE_SECONDS,
    TASK_RUNS,
    VAD_SECONDS,
    WHISPER_SECONDS,
    get_logger,
)
from proxyai.pipeline import prepared
from proxyai.pipeline.asr import AsrOptions, transcribe_chunks
from proxyai.pipeline.audio import AudioError
from proxyai.pipeline.diarize import DiarizationError
from proxyai.pipeline.models import ModelError, models
from proxyai.pipeline.run import (
    Prepared,
    build_result,
    diarize,
    prepare,
    pyannote_pipeline,
    transcribe,
    transcription_from_dict,
    transcription_to_dict,
    turns_from_list,
    turns_to_list,
)
from proxyai.pipeline.vad import Chunk, Region
from proxyai.store.db import utc
from proxyai.worker.app import CPU_QUEUE, GPU_QUEUE
from proxyai.worker.broker import database_url
from proxyai.worker.lease import leased
from proxyai.worker.memory import release_memory

log = get_logger("proxyai.worker")


class OutOfMemory(RuntimeError):
    """A job ran out of memory (raised instead of the MemoryError, which would stop the worker)."""


TRANSIENT = (OperationalError, ConnectionError, TimeoutError)
USER_ERRORS = (AudioError, ModelError, DiarizationError, ValueError, OutOfMemory)
INCOMING_IDLE_S = 3600.0  # a partial upload not written to for this long is swept by the clean-up


class JobTask(Task):  # type: ignore[misc]
    """Retries transient failures with backoff, counts runs, binds the job to every log line, and
    marks the job failed with a message a user can act on when a stage cannot succeed. Its ``ctx`` is
    the context of the app the task belongs to (the API's, or the worker process's)."""

    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 5

    @property
    def ctx(self) -> Context:
        ctx: Context = self.app.context
        return ctx

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        upload_id = args[0] if args else kwargs.get("upload_id")
        correlation_id = (
            (args[1] if len(args) > 1 else kwargs.get("correlation_id"))
            or getattr(self.request, "correlation_id", None)
            or (self.request.headers or {}).get("correlation_id")
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            upload_id=upload_id, correlation_id=correlation_id, task=self.name, task_id=self.request.id
        )
        try:
            try:
                result = super().__call__(*args, **kwargs)
            except MemoryError:  # Celery stops the worker on a MemoryError: fail this job, keep the worker
                raise OutOfMemory("the recording needs more memory than this worker has; split it") from None
        except BaseException as exc:
            TASK_RUNS.labels(self.name, "retry" if isinstance(exc, TRANSIENT) else "failure").inc()
            raise
        TASK_RUNS.labels(self.name, "success").inc()
        return result

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        release_memory()

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        upload_id = args[0] if args else kwargs.get("upload_id")
        if upload_id:
            ctx = self.ctx
            ctx.store.fail_job(upload_id, failure_message(exc))
            prepared.drop_samples(ctx.files.prepared_dir(upload_id))
        log.error("task failed", error=f"{type(exc).__name__}: {exc}")


def since(moment: datetime, now: float | None = None) -> float:
    """Seconds from ``moment`` (a time read from the database) to ``now`` (a ``time.time()``)."""
    return max(0.0, (time.time() if now is None else now) - utc(moment).timestamp())


def failure_message(exc: BaseException) -> str:
    if isinstance(exc, (SoftTimeLimitExceeded, TimeLimitExceeded)):
        return "processing took longer than the time limit; raise TASK_TIME_LIMIT or split the recording"
    if isinstance(exc, AudioError):
        return f"the file cannot be decoded as audio: {exc}"
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:  # the service's own files: for the operator to fix
        return f"the service cannot write its files ({exc.strerror or exc}: {exc.filename}); tell its operator"
    return f"internal error ({type(exc).__name__}); the job can be uploaded again"


def _throttled(fn: Callable[[float], None], every: float = 1.0) -> Callable[[float], None]:
    last = [0.0]

    def call(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= every or fraction >= 1.0:
            last[0] = now
            fn(fraction)

    return call


@shared_task(base=JobTask, bind=True, name="proxyai.prepare_job")
def prepare_job(self: JobTask, upload_id: str, correlation_id: str | None = None) -> None:
    """The first step (the CPU queue): decode the upload and map its speech, once, beside it; then send
    the two parts, which read that instead of decoding and scanning the audio again."""
    ctx = self.ctx
    picked = time.time()
    folder = ctx.files.prepared_dir(upload_id)
    with leased(ctx.store, upload_id, Part.PREPARE, self.request.id, ctx.settings.lease_seconds) as held:
        if not held:
            log.info("preparation leased by a live task, or its job finished: nothing to do")
            return
        job = ctx.store.get_job(upload_id)
        if job is None:
            return
        flags = {Part.ASR: job.asr_done, Part.DIARIZATION: job.diar_done}
        todo = [p for p in PARTS if not (flags[p] and ctx.files.part_path(upload_id, p).exists())]
        speech = prepared.read_speech_map(folder)
        if speech is None or (todo and not prepared.has_samples(folder)):
            if not ctx.store.start_part(upload_id, Stage.PREPARING):
                return
            options = pipeline_options(ctx.settings, job.job_options())
            t0 = time.perf_counter()
            try:
                prep = prepare(ctx.files.upload_path(upload_id), options)
            except AudioError:
                if _deleted(ctx, upload_id):
                    return
                raise
            VAD_SECONDS.observe(prep.timings["vad"])
            prep.timings["queue"] = since(job.created_at, picked)  # upload to the preparation's start
            prep.timings["prepare"] = time.perf_counter() - t0  # decode, speech scan and saving
            prepared.save(prep, folder)
            for stage in ("queue", "prepare"):
                JOB_STAGE_SECONDS.labels(stage).observe(prep.timings[stage])
            if _deleted(ctx, upload_id):
                return
            ctx.store.update_job(upload_id, duration=round(prep.duration, 3))
            speech = prepared.speech_map(prep)
            del prep
            log.info("prepared", duration=round(speech["duration"], 2), split=speech["split"], **speech["timings"])
        for part in todo:  # sent under the lease: a crash before this point sends the preparation again
            send_part(self.app, part, upload_id, job.correlation_id, float(speech["duration"]))
        if not todo:
            _finish(self, upload_id, None)


def _run_part(task: JobTask, upload_id: str, part: Part, compute: Callable[[Prepared, Any], dict[str, Any]]) -> None:
    """Under the part's lease: re-read the job, compute one part from the prepared recording and save it
    atomically (skipped when it is already saved, as when a task runs again), then record it and merge
    if it was the second."""
    ctx = task.ctx
    unprepared = None
    with leased(ctx.store, upload_id, part, task.request.id, ctx.settings.lease_seconds) as held:
        if not held:
            log.info("part leased by a live task, or its job finished: nothing to do", part=part)
            return
        if ctx.files.part_path(upload_id, part).exists():
            log.info("part already saved", part=part)
        else:
            job = ctx.store.get_job(upload_id)
            prep = prepared.load(ctx.files.prepared_dir(upload_id))
            if job is None:
                return
            if prep is None:  # not prepared (its files were lost): prepare again, which sends the part
                log.warning("the job is not prepared; preparing it again", part=part)
                unprepared = job
            else:
                computed = _compute_part(ctx, upload_id, part, job, prep, compute)
                del prep
                if not computed or _deleted(ctx, upload_id):
                    return
        if unprepared is None:
            _finish(task, upload_id, part)
    if unprepared is not None:  # sent once this part's lease is released, so the part can be sent again
        send_part(task.app, Part.PREPARE, upload_id, unprepared.correlation_id, unprepared.duration)


def _compute_part(
    ctx: Context,
    upload_id: str,
    part: Part,
    job: Any,
    prep: Prepared,
    compute: Callable[[Prepared, Any], dict[str, Any]],
) -> bool:
    """Compute and save one part; False when the job finished meanwhile (nothing computed)."""
    if not ctx.store.start_part(upload_id, STAGE_OF[part]):
        return False
    options = pipeline_options(ctx.settings, job.job_options())
    t0 = time.perf_counter()
    data = compute(prep, options)
    data["seconds"] = round(time.perf_counter() - t0, 3)
    ctx.files.write_json(upload_id, part, data)
    log.info("part saved", part=part, seconds=data["seconds"])
    return True


def _deleted(ctx: Context, upload_id: str) -> bool:
    """Whether the job was deleted while a part ran; if so, remove what the part wrote. Checked after
    every write: the API deletes the row before the files, so whichever of the two comes last removes
    the part."""
    if ctx.store.get_job(upload_id) is not None:
        return False
    ctx.files.delete(upload_id)
    log.info("job deleted while it ran; its files are removed")
    return True


@shared_task(base=JobTask, bind=True, name="proxyai.transcribe_segments")
def transcribe_segments(self: JobTask, upload_id: str, correlation_id: str | None = None) -> None:
    """Speech recognition of every voice chunk (the GPU queue)."""
    ctx = self.ctx
    report = _throttled(lambda f: ctx.store.part_progress(upload_id, Part.ASR, f, Stage.TRANSCRIBING))

    def compute(prep: Prepared, options: Any) -> dict[str, Any]:
        with WHISPER_SECONDS.time():
            result = transcribe(prep, options, progress=lambda _stage, f: report(f))
        return transcription_to_dict(result)

    _run_part(self, upload_id, Part.ASR, compute)


@shared_task(base=JobTask, bind=True, name="proxyai.diarize_full")
def diarize_full(self: JobTask, upload_id: str, correlation_id: str | None = None) -> None:
    """Who speaks when (the CPU queue)."""

    def compute(prep: Prepared, options: Any) -> dict[str, Any]:
        with DIARIZATION_SECONDS.time():
            return {"turns": turns_to_list(diarize(prep, options, threads=diarization_threads(self.ctx.settings)))}

    _run_part(self, upload_id, Part.DIARIZATION, compute)


def _finish(task: JobTask, upload_id: str, part: Part | None) -> None:
    """Record the part; when both are there, merge them with the speech map (idempotent: the result
    file is replaced whole), then drop the prepared samples."""
    ctx = task.ctx
    job = ctx.store.finish_part(upload_id, part) if part is not None else ctx.store.get_job(upload_id)
    if job is None or not (job.asr_done and job.diar_done):
        return
    if job.status == Status.DONE and ctx.files.part_path(upload_id, "result").exists():
        return
    asr = ctx.files.read_json(upload_id, Part.ASR)
    diar = ctx.files.read_json(upload_id, Part.DIARIZATION)
    speech = prepared.read_speech_map(ctx.files.prepared_dir(upload_id))
    if asr is None or diar is None or speech is None:  # a part's flag without its file: redo what is missing
        if speech is None:  # the preparation merges once it has mapped the speech again
            send_part(task.app, Part.PREPARE, upload_id, job.correlation_id, job.duration)
            return
        missing = Part.ASR if asr is None else Part.DIARIZATION
        ctx.store.update_job(upload_id, **{"asr_done" if missing == Part.ASR else "diar_done": False})
        send_part(task.app, missing, upload_id, job.correlation_id, job.duration)
        return
    ctx.store.update_job(upload_id, stage=Stage.MERGING)
    options = pipeline_options(ctx.settings, job.job_options())
    t0 = time.perf_counter()
    timings = {**speech.get("timings", {}), "asr": asr.get("seconds", 0.0), "diarization": diar.get("seconds", 0.0)}
    result = build_result(
        float(speech["duration"]),
        bool(speech["split"]),
        transcription_from_dict(asr),
        turns_from_list(diar["turns"]),
        options,
        timings,
    )
    result["timings"]["merge"] = round(time.perf_counter() - t0, 3)
    result["timings"]["total"] = round(since(job.created_at), 3)  # upload to result
    ctx.files.write_json(upload_id, "result", result)
    if _deleted(ctx, upload_id):
        return
    ctx.store.finish_job(upload_id, result["duration"])
    for stage in ("asr", "diarization", "merge", "total"):
        JOB_STAGE_SECONDS.labels(stage).observe(float(result["timings"].get(stage, 0.0)))
    prepared.drop_samples(ctx.files.prepared_dir(upload_id))
    log.info("job done", speakers=len(result["speakers"]), segments=len(result["segments"]))


@shared_task(base=JobTask, bind=True, name="proxyai.cleanup_old_files")
def cleanup_old_files(self: JobTask) -> dict[str, int]:
    """Delete uploads and results of finished jobs older than ``FILE_RETENTION_DAYS`` (never a job that
    is queued or running), and files that belong to no job and are as old."""
    ctx = self.ctx
    days = ctx.settings.file_retention_days
    removed = 0
    for job in ctx.store.old_jobs(days):
        ctx.files.delete(job.id)
        ctx.store.delete_job(job.id)
        removed += 1
    cutoff = time.time() - days * 86400
    known = set(ctx.store.job_ids())
    orphans = 0
    for path in ctx.files.orphans(known):
        if path.stat().st_mtime < cutoff:
            if path.is_dir():
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            orphans += 1
    partial = ctx.files.stale_incoming(INCOMING_IDLE_S)
    for path in partial:
        path.unlink(missing_ok=True)
    messages = delivered_messages(ctx.settings.broker_url) if ctx.settings.embedded else 0
    log.info("cleanup done", jobs=removed, orphans=orphans, partial_uploads=len(partial), broker_rows=messages)
    return {"jobs": removed, "orphans": orphans, "partial_uploads": len(partial)}


def delivered_messages(broker_url: str) -> int:
    """The embedded broker (kombu's SQLAlchemy transport) marks a delivered message invisible and keeps
    its row for ever (it never redelivers it either: leases do): delete those rows."""
    from sqlalchemy import create_engine, text

    url = database_url(broker_url)
    if not os.path.exists(url.split("///", 1)[-1]):
        return 0
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if not conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE name = 'kombu_message'").first():
                return 0
            return int(conn.execute(text("DELETE FROM kombu_message WHERE visible = 0")).rowcount or 0)
    finally:
        engine.dispose()


PART_TASKS = {
    Part.PREPARE: "proxyai.prepare_job",
    Part.ASR: "proxyai.transcribe_segments",
    Part.DIARIZATION: "proxyai.diarize_full",
}


def enqueue(app: Any, upload_id: str, correlation_id: str | None, duration: float | None) -> None:
    """Start a job on ``app`` (a ``CeleryApp``): its preparation, which sends the two parts (they run in
    parallel on their queues)."""
    send_part(app, Part.PREPARE, upload_id, correlation_id, duration)


def send_part(
    app: Any,
    part: str,
    upload_id: str,
    correlation_id: str | None,
    duration: float | None,
    task_id: str | None = None,
) -> None:
    task = app.tasks[PART_TASKS[Part(part)]]
    soft, hard = time_limits(app.settings, duration)
    task.apply_async(
        (upload_id, correlation_id),
        headers={"correlation_id": correlation_id},
        soft_time_limit=soft,
        time_limit=hard,
        task_id=task_id,
    )


@shared_task(base=JobTask, bind=True, name="proxyai.reap_expired")
def reap_expired(self: JobTask) -> int:
    """Send again every part whose worker stopped renewing its lease (it died); see ``lease.py``."""
    return reap(self.app)


def reap(app: Any) -> int:
    ctx: Context = app.context
    sent = 0
    for job, part in ctx.store.expired_leases():
        ticket = str(uuid.uuid4())
        _, hard = time_limits(ctx.settings, job.duration)
        # the lease waits for the new task for as long as that task may run, plus a queue's worth
        if not ctx.store.requeue_lease(job.id, part, ticket, time.time() + hard + ctx.settings.lease_seconds):
            continue
        log.warning("a part's worker stopped renewing its lease; sending the part again", upload_id=job.id, part=part)
        send_part(app, part, job.id, job.correlation_id, job.duration, task_id=ticket)
        sent += 1
    return sent


def diarization_threads(settings: Settings) -> int:
    """Cores for one diarization: this machine's, shared by the CPU queue's worker processes."""
    return max(1, (os.cpu_count() or 1) // settings.cpu_concurrency)


def warm_up(app: Any) -> None:
    """Load the models of ``app``'s worker once and run them on 2 s of audio."""
    ctx: Context = app.context
    queues = worker_queues()
    options = pipeline_options(ctx.settings, JobOptions())
    samples = (0.05 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    t0 = time.perf_counter()
    if GPU_QUEUE in queues:
        model = models.whisper(options.model, options.device, options.compute_type)
        transcribe_chunks(model, samples, [Chunk((Region(0.0, 2.0),))], AsrOptions(language="en"))
    backend = ctx.settings.diarization_backend
    if CPU_QUEUE in queues and backend == "embedded":
        threads = diarization_threads(ctx.settings)
        encoder = models.encoder(options.encoder, options.diarization.device, threads, options.diarizer_cache_dir)
        encoder.embed(np.zeros((1, 24000), np.float32))
    elif CPU_QUEUE in queues and backend == "pyannote":
        try:
            pyannote_pipeline(options)
        except DiarizationError as exc:  # its jobs fail with this message; the worker serves the others
            log.error("the pyannote pipeline (DIARIZATION_BACKEND) cannot be loaded", error=str(exc))
    release_memory()
    log.info("models warm", queues=queues, diarization=backend, seconds=round(time.perf_counter() - t0, 2))
