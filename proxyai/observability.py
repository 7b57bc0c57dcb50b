"""JSON logs (structlog, with ``upload_id`` and ``correlation_id`` bound per request and per task) and
Prometheus metrics.

Worker processes and the API share metrics through ``PROMETHEUS_MULTIPROC_DIR`` when it is set (one
machine: ``proxyai serve`` sets it); scaled out, ``proxyai metrics`` exports the queue's view.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_configured = False


def configure_logging(level: str = "INFO") -> None:
    """structlog JSON lines on stdout; the standard library's loggers go through the same renderer."""
    global _configured
    if _configured:
        return
    _configured = True
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(cast(TextIO, LINES)),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(LINES)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _celery_job_ids],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("faster_whisper", "httpx", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _celery_job_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Celery's own lines about a task (received, succeeded, failed) carry its arguments: our tasks take
    ``(upload_id, correlation_id)``, so those lines get the job's ids too."""
    record = event.get("_record")
    context = getattr(record, "data", None) or (
        record.args if record is not None and isinstance(record.args, dict) else None
    )
    if not isinstance(context, dict) or "upload_id" in event:
        return event
    args = context.get("args")
    if isinstance(args, str):
        with contextlib.suppress(ValueError, SyntaxError):
            args = ast.literal_eval(args)
    if isinstance(args, (list, tuple)) and args and isinstance(args[0], str):
        event["upload_id"] = args[0]
        if len(args) > 1 and isinstance(args[1], str):
            event["correlation_id"] = args[1]
    if context.get("id"):
        event.setdefault("task_id", context["id"])
    return event


class LineWriter:
    """A text stream that hands each ``write`` to the file descriptor in one ``os.write``, under a lock.

    structlog's writer and the logging handler both write one whole line per call, so every line leaves
    this process in one piece: threads of one process never interleave, and processes that share a pipe or
    a file opened for appending do not split each other's lines (a pipe keeps writes of up to 4 KiB whole;
    ``proxyai serve`` relays its worker's lines through its own writer instead of sharing the stream).
    """

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        with self._lock:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self.fd, view) :]
                except InterruptedError:
                    continue
                except OSError:
                    return 0  # stdout closed: a log line must never take a process down
        return len(text)

    def flush(self) -> None:
        pass


LINES = LineWriter(1)


def json_only_stdout() -> None:
    """Keep this process's stdout for the JSON lines: :data:`LINES` writes to a copy of it, and file
    descriptor 1, where Celery prints its banner and shutdown notices (and any library prints), becomes
    stderr. Child processes (a worker's pool) inherit both. Called once by ``worker`` and ``beat``."""
    if LINES.fd != 1:
        return
    sys.stdout.flush()
    LINES.fd = os.dup(1)
    os.dup2(2, 1)


def get_logger(name: str = "proxyai") -> Any:
    return structlog.get_logger(name)


HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "path", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["method", "path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
VAD_SECONDS = Histogram(
    "vad_segmentation_seconds",
    "Decoding and voice-activity detection per job part",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300),
)
WHISPER_SECONDS = Histogram(
    "whisper_transcription_seconds", "Speech recognition per job", buckets=(1, 5, 15, 60, 300, 900, 3600)
)
DIARIZATION_SECONDS = Histogram("diarization_seconds", "Diarization per job", buckets=(0.5, 1, 5, 15, 60, 300, 900))
JOB_STAGE_SECONDS = Histogram(
    "job_stage_seconds",
    "Each stage of a job: queue (upload to pick-up), prepare, asr, diarization, merge, total (upload to result)",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)
TASK_RUNS = Counter("celery_task_runs_total", "Task runs by task and outcome", ["task", "outcome"])


def _registry() -> CollectorRegistry:
    """This process's registry, or, in multiprocess mode, one that sums every process's files."""
    from prometheus_client import REGISTRY

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render_metrics(extra: dict[str, dict[tuple[str, ...], float]] | None = None) -> bytes:
    """This process's metrics (or every process's, in multiprocess mode), plus gauges computed now
    (``extra``: metric name → {label values: value}; labels per metric in ``EXTRA_LABELS``)."""
    body = generate_latest(_registry())
    if extra:
        now_registry = CollectorRegistry()
        for name, values in extra.items():
            labels = EXTRA_LABELS.get(name, ())
            gauge = Gauge(name, EXTRA_HELP.get(name, name), labels, registry=now_registry)
            for key, value in values.items():
                (gauge.labels(*key) if labels else gauge).set(value)
        body += generate_latest(now_registry)
    return body


def serve_metrics(host: str, port: int) -> None:
    """Serve every process's metrics of the metrics folder, summed, at ``http://host:port/`` (prometheus_client's
    own server, in a daemon thread); a port that is taken is logged and skipped, never fatal."""
    from prometheus_client import start_http_server

    log = structlog.get_logger("proxyai.worker")
    try:
        start_http_server(port, addr=host, registry=_registry())
    except OSError as exc:
        log.warning("worker metrics not served (WORKER_METRICS_PORT)", port=port, error=str(exc))
        return
    log.info("worker metrics served", port=port)


EXTRA_LABELS: dict[str, tuple[str, ...]] = {"proxyai_jobs": ("status",), "proxyai_queue_depth": ("queue",)}
EXTRA_HELP = {"proxyai_jobs": "Jobs by status", "proxyai_queue_depth": "Messages waiting per queue"}
