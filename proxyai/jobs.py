"""The life of a job, in names every layer shares (the store, the workers, the API).

A job is ``queued``; a first step prepares it (decodes the upload and maps its speech, once); then its
two parts run side by side on their queues (recognition on ``preprocess_gpu``, diarization on
``preprocess_cpu``); whichever part finishes second merges them:

    queued → preparing → transcribing ‖ diarizing → merging → done | failed

``Stage`` is where a job is, ``Status`` the coarse view clients poll (``processing`` for every stage
between queued and done). Each step runs under a lease on the job (``proxyai.worker.lease``).
"""

from __future__ import annotations

from enum import StrEnum


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
