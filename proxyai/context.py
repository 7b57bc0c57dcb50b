"""What the API and the workers share: settings, the store, the files, and a job's pipeline options."""

from __future__ import annotations

import os
from dataclasses import dataclass

from proxyai.config import Settings
from proxyai.jobs import JobOptions
from proxyai.pipeline.asr import AsrOptions
from proxyai.pipeline.cluster import ClusterOptions
from proxyai.pipeline.diarize import DiarizationOptions
from proxyai.pipeline.run import PipelineOptions
from proxyai.store.db import Store
from proxyai.store.files import Files


@dataclass
class Context:
    settings: Settings
    store: Store
    files: Files


def make_context(settings: Settings, migrate: bool = True) -> Context:
    store = Store(settings.db_url)
    if migrate:
        store.migrate()
    return Context(settings, store, Files(settings.uploads, settings.results))


def pipeline_options(settings: Settings, job: JobOptions) -> PipelineOptions:
    """The pipeline's options for a job: its own choices over the service's settings."""
    return PipelineOptions(
        model=settings.whisper_model_path,
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        encoder=settings.speaker_encoder,
        vad_level=settings.vad_level,
        segment_length=settings.segment_length_s,
        channels=job.channels,
        pyannote_protocol=settings.pyannote_protocol,
        huggingface_token=settings.huggingface_token.get_secret_value() if settings.huggingface_token else None,
        max_duration=settings.max_duration,
        diarizer_cache_dir=str(settings.diarizer_cache_dir) if settings.diarizer_cache_dir else None,
        asr=AsrOptions(language=job.language, task=job.task, batch_size=settings.batch_size),
        diarization=DiarizationOptions(
            backend=job.diarization,
            num_speakers=job.num_speakers,
            min_speakers=job.min_speakers,
            max_speakers=job.max_speakers,
            device="cpu" if settings.whisper_device == "cpu" else "auto",
            cluster=ClusterOptions(method=settings.clustering),
        ),
    )


def time_limits(settings: Settings, duration: float | None) -> tuple[int, int]:
    """(soft, hard) seconds for one part of a job: the configured limits, raised for long audio so that
    an hour-long file is not killed halfway (a slow CPU transcribes at about real time), up to
    ``TASK_TIME_LIMIT_MAX``."""
    extra = int(1.5 * min(duration or 0.0, settings.max_duration))  # a header's claim counts up to the cap
    hard = min(settings.task_time_limit + extra, max(settings.task_time_limit_max, settings.task_time_limit))
    soft = min(settings.task_soft_time_limit + extra, hard - 5)
    return soft, hard


def visibility_timeout(settings: Settings) -> int:
    """The Redis broker's visibility timeout: the setting, raised above the largest hard time limit."""
    largest = max(settings.task_time_limit_max, settings.task_time_limit)
    return max(settings.celery_visibility_timeout, largest + 600)


def worker_queues() -> list[str]:
    """The queues this worker process serves (set by ``proxyai worker``; all when unknown)."""
    value = os.environ.get("PROXYAI_WORKER_QUEUES", "")
    return [q for q in value.split(",") if q] or ["preprocess_cpu", "preprocess_gpu"]
