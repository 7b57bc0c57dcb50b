"""The Celery app: two queues (``preprocess_cpu`` for diarization, ``preprocess_gpu`` for recognition),
crash-safe settings, the daily clean-up, and model warm-up when a worker process starts."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.schedules import crontab
from celery.signals import setup_logging, worker_init, worker_process_init, worker_ready
from kombu.entity import Exchange, Queue

from proxyai.config import Settings, get_settings
from proxyai.context import Context, make_context, visibility_timeout

CPU_QUEUE = "preprocess_cpu"
GPU_QUEUE = "preprocess_gpu"
SHUTDOWN_GRACE_S = 10.0


class CeleryApp(Celery):  # type: ignore[misc]
    """A Celery app that carries the proxyAI context its tasks run in (settings, store, files): the API
    builds one with its own context, a worker process one from its settings. Tasks reach it through
    their base task (``JobTask.ctx``), never through a process global."""

    def __init__(self, settings: Settings, context: Context | None = None, **kwargs: Any) -> None:
        super().__init__("proxyai", include=["proxyai.worker.tasks"], **kwargs)
        self.settings = settings
        self._context = context

    @property
    def context(self) -> Context:
        if self._context is None:  # a worker's: made on first use, after the fork
            self._context = make_context(self.settings)
        return self._context


def make_celery(settings: Settings, context: Context | None = None, set_as_current: bool = True) -> CeleryApp:
    """A configured app with the job tasks registered (``shared_task``: every app gets its own copy)."""
    import proxyai.worker.tasks  # noqa: F401  # registers the tasks

    app = CeleryApp(settings, context, set_as_current=set_as_current)
    configure(app, settings)
    app.steps["worker"].add(WaitForWarmPool)
    app.steps["worker"].add(StopOnSignals)
    return app


def configure(app: Celery, settings: Settings) -> None:
    """Apply ``settings`` to ``app``."""
    if settings.embedded:
        from proxyai.store.db import private_file
        from proxyai.worker import broker

        broker.register()

        private_file(settings.data_dir / "broker.db")
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.celery_result_backend,
        task_queues=(
            Queue(CPU_QUEUE, Exchange(CPU_QUEUE), routing_key=CPU_QUEUE),  # type: ignore[no-untyped-call]
            Queue(GPU_QUEUE, Exchange(GPU_QUEUE), routing_key=GPU_QUEUE),  # type: ignore[no-untyped-call]
        ),
        task_default_queue=CPU_QUEUE,
        task_routes={
            "proxyai.prepare_job": {"queue": CPU_QUEUE},
            "proxyai.diarize_full": {"queue": CPU_QUEUE},
            "proxyai.transcribe_segments": {"queue": GPU_QUEUE},
            "proxyai.cleanup_old_files": {"queue": CPU_QUEUE},
            "proxyai.reap_expired": {"queue": CPU_QUEUE},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        # below the hard limit, as time_limits() keeps it (a TASK_TIME_LIMIT set alone under the default
        # soft limit must not make every send fail)
        task_soft_time_limit=max(1, min(settings.task_soft_time_limit, settings.task_time_limit - 5)),
        task_ignore_result=settings.celery_result_backend is None,
        task_always_eager=settings.celery_task_always_eager,
        task_eager_propagates=False,
        task_serializer="json",
        accept_content=["json"],
        timezone=settings.celery_timezone,
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        # Redis: how long a message a worker took stays invisible before it is handed out again; above
        # every hard time limit, so a running task is never handed out twice (a dead worker's part is
        # sent again by the lease reaper). The embedded broker: how often it looks at empty queues.
        # unacked_restore_throttle: look for such messages every few seconds, not every 100.
        broker_transport_options=(
            {"polling_interval": settings.broker_poll_interval}
            if settings.embedded
            else {"visibility_timeout": visibility_timeout(settings), "unacked_restore_throttle": 1}
        ),
        # a pool process that warms its models up takes longer than Celery's default 4 s to report
        worker_proc_alive_timeout=300,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=True,
        # a stopping worker gives its running tasks this long before it cancels them (StopOnSignals)
        worker_soft_shutdown_timeout=SHUTDOWN_GRACE_S,
        task_send_sent_event=True,
        beat_schedule={
            "cleanup-old-files": {"task": "proxyai.cleanup_old_files", "schedule": crontab(hour=3, minute=17)},
            "reap-expired-leases": {"task": "proxyai.reap_expired", "schedule": float(settings.lease_seconds)},
        },
        beat_schedule_filename=str(settings.data_dir / "beat-schedule"),
    )


@setup_logging.connect
def _logging(**_: Any) -> None:
    """JSON lines from the worker's main process too (instead of Celery's own format)."""
    from proxyai.observability import configure_logging

    configure_logging(celery_app.settings.log_level)


@worker_init.connect
def _warm_up_main(sender: Any = None, **_: Any) -> None:
    """Threads or solo pool: the one worker process loads the models, shared by its threads, before it
    consumes anything. Prefork: the children warm up (after the fork: no thread pools are copied);
    :class:`WaitForWarmPool` holds the consumer until they have."""
    if os.environ.get("PROXYAI_WORKER_POOL", "prefork") != "prefork":
        _warm_up()
    else:
        os.environ["PROXYAI_WARM_DIR"] = tempfile.mkdtemp(prefix="proxyai-warm-")


@worker_process_init.connect
def _warm_up_child(**_: Any) -> None:
    _warm_up()
    folder = os.environ.get("PROXYAI_WARM_DIR")
    if folder and os.path.isdir(folder):
        Path(folder, str(os.getpid())).touch()


@worker_ready.connect
def _reap_on_start(sender: Any = None, **_: Any) -> None:
    """A worker that starts (after a crash, say) sends again the parts whose workers died, at once."""
    from proxyai.worker.tasks import log, reap

    try:
        reap(sender.app if sender is not None else celery_app)
    except Exception as exc:  # beat's reaper tries again soon
        log.warning("reaping expired leases failed", error=f"{type(exc).__name__}: {exc}")


class WaitForWarmPool(bootsteps.StartStopStep):  # type: ignore[misc]
    """Start consuming only once every pool process has warmed its models up, so that a worker that
    answers a ping takes its first task at full speed."""

    requires = ("celery.worker.components:Pool",)

    def start(self, worker: Any) -> None:
        folder = os.environ.get("PROXYAI_WARM_DIR")
        if not folder or not worker.app.settings.warmup:
            return
        deadline = time.monotonic() + 300
        while len(os.listdir(folder)) < int(worker.concurrency or 1) and time.monotonic() < deadline:
            time.sleep(0.2)


class StopOnSignals(bootsteps.StartStopStep):  # type: ignore[misc]
    """SIGTERM, SIGINT and SIGHUP all stop the worker within ``SHUTDOWN_GRACE_S`` (Celery's SIGTERM
    waits for every running task, however long; its SIGHUP restarts the worker): running tasks get that
    long to finish, then they are cancelled and their messages given back to the broker (unacknowledged:
    acks_late), and their parts' leases let the next worker take them over. Installed once Celery has
    installed its own handlers (this step starts after them)."""

    def start(self, worker: Any) -> None:
        from celery.apps.worker import install_worker_term_hard_handler

        for name in ("SIGTERM", "SIGINT", "SIGHUP"):
            install_worker_term_hard_handler(worker, sig=name, exitcode=0)


def _warm_up() -> None:
    """Load the models this worker needs and run them on 2 s of audio, so the first job is not slow."""
    from proxyai.observability import configure_logging

    configure_logging(celery_app.settings.log_level)
    if celery_app.settings.warmup:
        from proxyai.worker.tasks import warm_up

        warm_up(celery_app)


# The worker processes' app (``proxyai worker``/``beat``/``metrics`` run it), from their settings; the
# API makes its own with its context (``create_app``).
celery_app = make_celery(get_settings())
