"""Response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from proxyai.jobs import Stage
from proxyai.jobs import Status as JobStatus
from proxyai.store.db import Job, utc


class UploadResponse(BaseModel):
    upload_id: str


class Status(BaseModel):
    upload_id: str
    status: JobStatus
    stage: Stage
    progress: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    duration: float | None
    filename: str

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @classmethod
    def of(cls, job: Job) -> Status:
        return cls(
            upload_id=job.id,
            status=JobStatus(job.status),
            stage=Stage(job.stage),
            progress=100 if job.status == JobStatus.DONE else min(job.progress, 99),
            error=job.error,
            created_at=job.created_at,
            updated_at=job.updated_at,
            duration=job.duration,
            filename=job.filename,
        )


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float


class Segment(BaseModel):
    start: float
    end: float
    speaker: str | None = Field(description="the speaker's id (SPEAKER_00, …; CH0/CH1 for a split call)")
    text: str
    words: list[Word]
    channel: int | None = Field(None, description="for a stereo call transcribed by channel")


class Speaker(BaseModel):
    id: str
    label: str = Field(description="the name given with POST /labels, else the id")


class SpeakerTurn(BaseModel):
    start: float
    end: float
    speaker: str


class Result(BaseModel):
    """A finished job's transcript, speaker names applied (``transcript`` is ``segments`` again, for
    clients of the first API)."""

    upload_id: str
    status: JobStatus
    duration: float
    language: str | None
    language_probability: float
    speakers: list[Speaker]
    segments: list[Segment]
    transcript: list[Segment]
    diarization: list[SpeakerTurn] = Field(description="who speaks when, overlaps kept")
    model: dict[str, str] = Field(description="the ASR model and the diarization backend used")
    timings: dict[str, float] = Field(
        description="seconds per stage: queue (upload to pick-up), prepare (decode, vad), asr, diarization, "
        "merge, and total (upload to result)"
    )


class JobList(BaseModel):
    items: list[Status]
    total: int
    limit: int
    offset: int


class Labels(BaseModel):
    upload_id: str
    labels: dict[str, str]


class NewUser(BaseModel):
    user_id: str
    name: str
    api_key: str


class Health(BaseModel):
    status: str
    version: str
    diarization: str  # the backend of the jobs that do not choose one (DIARIZATION_BACKEND)
    failing: dict[str, str] | None = None


class Problem(BaseModel):
    """Every error: ``detail`` says what went wrong (and what to do), for a person to read."""

    detail: str


class JobNotDone(Problem):
    """``GET /results`` of a job that is not done (202) or failed (409)."""

    status: JobStatus
    upload_id: str


Responses = dict[int | str, dict[str, Any]]  # a route's ``responses``


def problem(description: str, model: type[Problem] = Problem) -> dict[str, Any]:
    """A documented error response (for a route's ``responses``): JSON with a ``detail``."""
    return {"model": model, "description": description}
