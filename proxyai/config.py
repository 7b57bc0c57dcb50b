"""One pydantic-settings ``Settings``: every key from the environment or ``.env``."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int:
    """``524288000``, ``500MB``, ``500MiB``, ``1G`` → bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (use bytes, or a number with KB, MB, GB)")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = "bkmgt".index(unit[0]) if unit else 0
    return int(number * base**power) if unit and unit[0] != "b" else int(number)


class SettingsError(RuntimeError):
    """A setting has a bad value; the message names the key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # queue: no broker URL means the embedded one (SQLite through kombu's SQLAlchemy transport)
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    celery_timezone: str = "UTC"
    celery_task_always_eager: bool = False
    # Redis: how long a message a worker took stays invisible before the broker hands it out again;
    # always raised above the largest hard time limit (TASK_TIME_LIMIT_MAX), so that the broker never
    # redelivers a task that is still running. A dead worker's part is sent again by its lease instead.
    celery_visibility_timeout: int = Field(3600, ge=5)
    # the embedded broker: seconds between polls of its queues when no publisher rang (proxyai.worker.broker)
    broker_poll_interval: float = Field(1.0, gt=0, le=60)
    task_time_limit: int = Field(600, ge=10)
    task_soft_time_limit: int = Field(550, ge=5)
    task_time_limit_max: int = Field(6 * 3600, ge=60)  # the time limits grow with the audio up to this
    lease_seconds: int = Field(30, ge=5)  # a part's lease: renewed every 1/6 of it; expired, the part is sent again
    api_workers: int = Field(1, ge=1)
    cpu_concurrency: int = Field(1, ge=1)
    gpu_concurrency: int = Field(1, ge=1)
    warmup: bool = True

    # storage
    data_dir: Path = Path("data")
    database_url: str | None = None
    upload_folder: Path | None = None
    results_folder: Path | None = None
    diarizer_cache_dir: Path | None = None
    max_file_size: int = 500 * 1000**2
    max_duration: float = Field(4 * 3600, gt=0)  # seconds of audio per job: refused at upload, enforced in decoding
    file_retention_days: int = Field(7, ge=1)

    # pipeline
    whisper_model_path: str = "base"
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str = "auto"
    speaker_encoder: str = "campplus"
    # the diarization of every job that does not choose one (the upload's ``diarization`` field)
    diarization_backend: Literal["embedded", "pyannote", "none"] = "embedded"
    clustering: Literal["ahc", "spectral"] = "ahc"
    pyannote_protocol: str | None = None
    huggingface_token: SecretStr | None = None
    segment_length_s: float = Field(30.0, ge=1.0, le=30.0)
    vad_level: int = Field(2, ge=0, le=3)
    batch_size: int | None = Field(None, ge=1)  # None: 8 on a GPU, 4 on a CPU

    # API
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # addresses of reverse proxies whose X-Forwarded-For / -Proto are believed (comma-separated, "*" for
    # any); none by default, so a client cannot pick the address its rate limits are counted under
    forwarded_allow_ips: str = ""
    admin_token: SecretStr | None = None
    rate_limit_upload: str = "10/minute"
    rate_limit_results: str = "20/minute"
    rate_limit_health: str = "30/minute"
    rate_limit_metrics: str = "10/minute"
    rate_limit_storage_url: str | None = None
    tus_endpoint: str | None = None
    metrics_port: int = Field(9100, ge=1, le=65535)
    # every ``proxyai worker`` serves its own metrics here (its pool's processes summed); 0: none
    worker_metrics_port: int = Field(9101, ge=0, le=65535)
    worker_metrics_host: str = "0.0.0.0"
    flower_user: str | None = None
    flower_pass: SecretStr | None = None
    log_level: str = "INFO"

    @field_validator("max_file_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        size = parse_size(value)
        if size <= 0:
            raise ValueError("must be positive")
        return size

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return list(value)

    @field_validator("rate_limit_upload", "rate_limit_results", "rate_limit_health", "rate_limit_metrics")
    @classmethod
    def _limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"not a rate limit: {value!r} (use e.g. 10/minute)") from None
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """``KEY=`` in .env means the default, for optional keys (``DATABASE_URL=``)."""
        if value == "" and info.field_name and cls.model_fields[info.field_name].default is None:
            return None
        return value

    # derived values
    @property
    def uploads(self) -> Path:
        return self.upload_folder or self.data_dir / "uploads"

    @property
    def results(self) -> Path:
        return self.results_folder or self.data_dir / "results"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'proxyai.db').resolve()}"

    @property
    def broker_url(self) -> str:
        # kombu's SQLAlchemy transport, polled every broker_poll_interval (proxyai.worker.broker)
        return self.celery_broker_url or f"proxyai+sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.celery_broker_url is None

    @property
    def limiter_storage(self) -> str:
        if self.rate_limit_storage_url:
            return self.rate_limit_storage_url
        if self.celery_broker_url and self.celery_broker_url.startswith(("redis://", "rediss://")):
            return self.celery_broker_url
        return "memory://"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``.env``; a bad value raises :class:`SettingsError` naming the key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            problems.append(f"{key}: {err['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
