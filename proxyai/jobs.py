"""The life of a job, in names every layer shares (the store, the workers, the API).

A job is ``queued``; a first step prepares it (decodes the upload and maps its speech, once); then its
two parts run side by side on their queues (recognition on ``preprocess_gpu``, diarization on
``preprocess_cpu``); whichever part finishes second merges them:

    queued → preparing → transcribing ‖ diarizing → merging → done | failed

``Stage`` is where a job is, ``Status`` the coarse view clients poll (``processing`` for every stage
between queued and done). Each step runs under a lease on the job (``proxyai.worker.lease``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Status(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class Stage(StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    TRANSCRIBING = "transcribing"
    DIARIZING = "diarizing"
    MERGING = "merging"
    DONE = "done"
    FAILED = "failed"


class Part(StrEnum):
    """A step a worker runs under a lease: the preparation, then the two parts."""

    PREPARE = "prepare"
    ASR = "asr"
    DIARIZATION = "diarization"


ACTIVE = (Status.QUEUED, Status.PROCESSING)
FINISHED = (Status.DONE, Status.FAILED)
PARTS = (Part.DIARIZATION, Part.ASR)  # the two that run side by side, in the order they are sent
STAGE_OF = {Part.PREPARE: Stage.PREPARING, Part.ASR: Stage.TRANSCRIBING, Part.DIARIZATION: Stage.DIARIZING}

# shares of the progress bar: preparation, recognition (most of the time), diarization; the rest merges
PREPARE_SHARE, ASR_SHARE, DIARIZATION_SHARE = 0.05, 0.75, 0.15


def overall_progress(asr: float, diarization: float, prepared: bool = True) -> int:
    """Percent done of a job whose parts are ``asr`` and ``diarization`` (0–1) done."""
    return round(100 * (PREPARE_SHARE * prepared + ASR_SHARE * asr + DIARIZATION_SHARE * diarization))


class OptionsError(ValueError):
    """A job option that cannot be used: ``field`` names it (the form field, the CLI flag)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


Speakers = Field(None, ge=1, le=50)


class JobOptions(BaseModel):
    """What one job may choose (the rest comes from the service's settings): validated once, where the
    request comes in (the upload form, the CLI's flags), stored with the job, read back by the worker."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    language: str | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    num_speakers: int | None = Speakers
    min_speakers: int | None = Speakers
    max_speakers: int | None = Speakers
    diarization: Literal["embedded", "pyannote", "none"] = "embedded"
    channels: Literal["auto", "mix", "split"] = "auto"

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise ValueError("must be a language code")
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        code = value.strip().lower()
        if code not in _LANGUAGE_CODES:
            raise ValueError(f"unknown language code {code!r} (use e.g. en, ru, de)")
        return code

    @field_validator("num_speakers", "min_speakers", "max_speakers", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if value is None or value == "auto" or value == "":
            return None
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"[0-9]{1,3}", value.strip()))
        ):
            raise ValueError("must be a whole number from 1 to 50")
        return int(value)

    @model_validator(mode="after")
    def _range(self) -> JobOptions:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise OptionsError("min_speakers", "is larger than max_speakers")
        return self

    @classmethod
    def parse(cls, values: dict[str, Any], defaults: dict[str, Any] | None = None) -> JobOptions:
        """Validate ``values`` (form fields as strings, or stored options) over ``defaults`` (the service's
        settings, for what ``values`` leaves out or blank); :class:`OptionsError` naming the first field
        that is wrong."""
        cleaned = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
        cleaned = {**(defaults or {}), **{k: v for k, v in cleaned.items() if v not in ("", None)}}
        try:
            return cls.model_validate(cleaned)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "options"
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, OptionsError):
                raise cause from None
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] in ("greater_than_equal", "less_than_equal", "int_parsing", "int_type"):
                message = "must be a whole number from 1 to 50"
            elif err["type"] == "literal_error":
                message = err["msg"].replace("Input should be", "must be")
            raise OptionsError(field, message) from None

    def stored(self) -> dict[str, Any]:
        """What is kept with the job: the choices that differ from the defaults."""
        return self.model_dump(exclude_defaults=True)
