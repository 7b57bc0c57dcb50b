"""Response bodies."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, field_validator

from proxyai.jobs import Stage
from proxyai.jobs import Status as JobStatus
from proxyai.store.db import Job


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
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

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
    failing: dict[str, str] | None = None


class Problem(BaseModel):
    detail: Any
