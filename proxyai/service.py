"""Running the service's processes: API, worker, beat, the Celery exporter, and all of them at once."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from proxyai.config import Settings


def prepare_metrics_dir(settings: Settings, folder: Path | None = None) -> None:
    """Share Prometheus metrics between processes through ``folder`` (default: the machine's, in the
    data folder), unless a folder is set already; must run before prometheus_client is imported."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = (folder or settings.data_dir / "metrics").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def local_key(settings: Settings) -> tuple[str | None, Path]:
    """On a machine with no users yet, create ``local`` and keep its key in ``data/local-api-key``
    (created readable by its owner only); the key is returned only then, to be shown once."""
    from proxyai.context import make_context

    ctx = make_context(settings)
    path = settings.data_dir / "local-api-key"
    if ctx.store.count_users() == 0:
        _, key = ctx.store.create_user("local")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a key file of an earlier database: replaced, never reopened
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key, path
    return None, path


def run_api(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from proxyai.context import make_context

    make_context(settings)  # migrate once, before any worker process starts
    config = uvicorn.Config(
        "proxyai.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        log_config=None,
        access_log=False,
        # X-Forwarded-For only from the proxies named in FORWARDED_ALLOW_IPS (uvicorn would trust 127.0.0.1)
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )

    class Processes(Multiprocess):
        """uvicorn's supervisor of several API processes, which restarts them on SIGHUP: stop instead,
        as on SIGTERM (a service manager's hang-up means stop, and nothing reloads a changed setting)."""

        def handle_hup(self) -> None:
            self.handle_term()

    if config.workers > 1:
        Processes(config, sockets=[config.bind_socket()]).run()
    else:
        # one process: uvicorn handles SIGINT and SIGTERM; a hang-up is handed over as SIGTERM
        previous = signal.signal(signal.SIGHUP, _hang_up_as_term)
        server = uvicorn.Server(config)
        try:
            server.run()
        finally:
            signal.signal(signal.SIGHUP, previous)
        if not server.started:  # as uvicorn.run: the port was taken, the app failed to start
            raise SystemExit(3)


def worker_argv(queues: str, concurrency: int, pool: str, beat: bool, name: str | None = None) -> list[str]:
    argv = ["worker", "-Q", queues, "-c", str(concurrency), "--pool", pool, "--loglevel", "INFO"]
    argv += [
        "-n",
        name or f"proxyai-{queues.replace(',', '-')}-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        argv.append("-B")
    return argv


def run_worker(settings: Settings, queues: str, concurrency: int, pool: str, beat: bool = False) -> None:
    os.environ["PROXYAI_WORKER_QUEUES"] = queues
    os.environ["PROXYAI_WORKER_POOL"] = pool
    # MKL (inside CTranslate2) keeps the buffers of every matrix size it has met, ~50 MB after one
    # meeting, for no speed measurable here; an idle worker should hold its models and little else
    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")
    from proxyai.worker.memory import limit_arenas

    limit_arenas()
    own = None
    if settings.worker_metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # the pool's processes write their metrics to a folder of this worker's, summed at its endpoint
        own = Path(tempfile.mkdtemp(prefix="proxyai-worker-metrics-"))
        prepare_metrics_dir(settings, own)
    from proxyai.context import make_context
    from proxyai.observability import json_only_stdout, serve_metrics
    from proxyai.worker.app import celery_app

    json_only_stdout()
    make_context(settings)
    if settings.worker_metrics_port:
        serve_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
    main = os.getpid()
    try:
        celery_app.worker_main(worker_argv(queues, concurrency, pool, beat))
    finally:
        if own is not None and os.getpid() == main:
            shutil.rmtree(own, ignore_errors=True)


def run_beat(settings: Settings) -> None:
    from proxyai.observability import json_only_stdout
    from proxyai.worker.app import celery_app

    json_only_stdout()
    # beat stops on SIGTERM and SIGINT; a hang-up stops it too, even when it was started with SIGHUP
    # ignored (nohup, a background job of a script), whose disposition it would otherwise inherit
    signal.signal(signal.SIGHUP, _hang_up_as_term)
    schedule = settings.data_dir / "beat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel", "INFO", "-s", str(schedule)])


class Stopping(BaseException):
    """Raised in the main thread by SIGTERM, SIGINT or SIGHUP once the API has shut down."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _hang_up_as_term(*_: Any) -> None:
    """A SIGHUP handler for a process that stops on SIGTERM only (uvicorn, beat): a hang-up stops it too."""
    signal.raise_signal(signal.SIGTERM)


def _on_stop_signal(signum: int, frame: Any) -> None:
    if signum == signal.SIGHUP:  # uvicorn shuts down on SIGTERM only: hand SIGHUP over to it
        _hang_up_as_term()
        return
    raise Stopping(signum)


def _die_with_parent() -> None:
    """In a child before it runs: the kernel sends it SIGTERM when its parent dies, even by SIGKILL."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def relay(stream: Any) -> None:
    """Copy a child's stdout to ours line by line through :data:`LINES` (so its lines and the API's never
    interleave); what is not a JSON object (Celery's banner, a warning printed by a library) goes to
    stderr, so that every line on stdout parses."""
    from proxyai.observability import LINES

    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            continue
        try:
            is_json = isinstance(json.loads(line), dict)
        except ValueError:
            is_json = False
        if is_json:
            LINES.write(line + "\n")
        else:
            print(line, file=sys.stderr, flush=True)


class Supervised:
    """A child process that is restarted when it crashes and stopped with the service.

    Its stdout is relayed (:func:`relay`); it dies with this process (:func:`_die_with_parent`). Asked to
    stop, it gets SIGTERM (Celery: finish or give back the running tasks), then SIGKILL after
    ``grace`` seconds.
    """

    def __init__(self, name: str, argv: list[str], grace: float = 20.0) -> None:
        self.name = name
        self.argv = argv
        self.grace = grace
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{name}", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        proc = subprocess.Popen(self.argv, env=os.environ.copy(), stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        threading.Thread(target=relay, args=(proc.stdout,), name=f"relay-{self.name}", daemon=True).start()
        self.proc = proc

    def _watch(self) -> None:
        """Runs as long as the child: it was created by this thread, and the kernel's parent-death
        signal follows the creating thread."""
        delay = 1.0
        while True:
            assert self.proc is not None
            code = self.proc.wait()
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 30.0)  # a child that cannot start is retried ever more slowly
            with self._lock:
                if self._stopping.is_set():
                    return
                print(f"proxyai: the {self.name} exited ({code}); restarting it", file=sys.stderr, flush=True)
                self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(settings: Settings, host: str, port: int) -> int:
    """The API, a worker (both queues) and the daily clean-up's clock on this machine, no other server.

    The worker is a supervised child (restarted when it crashes); the clock is a thread of this process
    (no process of its own that a crash could leave behind). SIGTERM, SIGINT and SIGHUP stop everything.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop_signal)
    prepare_metrics_dir(settings)
    key, path = local_key(settings)
    if key:  # shown once, when it is created
        print(f"proxyai: API key for this machine: {key}  (kept in {path})", file=sys.stderr, flush=True)
    elif path.exists():
        print(f"proxyai: the API key for this machine is in {path}", file=sys.stderr, flush=True)
    concurrency = max(2, settings.cpu_concurrency + settings.gpu_concurrency)
    os.environ["WORKER_METRICS_PORT"] = "0"  # the worker's metrics are the API's /metrics here (one folder)
    argv = [sys.executable, "-m", "proxyai.cli", "worker", "--queues", "preprocess_cpu,preprocess_gpu"]
    worker = Supervised("worker", [*argv, "--concurrency", str(concurrency), "--pool", "threads"])
    clock = None
    try:
        worker.start()
        clock = start_clock(settings)
        run_api(settings, host, port, workers=1)  # returns after SIGINT/SIGTERM, then re-raises it
    except (KeyboardInterrupt, Stopping):
        pass
    finally:
        for signum in STOP_SIGNALS:  # a second signal must not interrupt the clean-up
            signal.signal(signum, signal.SIG_IGN)
        if clock is not None:
            clock.stop()
        worker.stop()
    return 0


def start_clock(settings: Settings) -> Any:
    """Celery beat as a thread of this process (the schedule of ``proxyai.worker.app``)."""
    from celery.beat import EmbeddedService

    from proxyai.worker.app import celery_app

    schedule = settings.data_dir / "beat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    clock = EmbeddedService(celery_app, thread=True, schedule_filename=str(schedule))
    clock.start()
    return clock


def run_exporter(settings: Settings, port: int) -> None:
    """A Prometheus exporter for Celery: queue lengths, task runtimes and outcomes, workers up."""
    from prometheus_client import Counter, Gauge, Histogram, start_http_server

    from proxyai.api.routes.health import queue_depths
    from proxyai.worker.app import celery_app

    queue_len = Gauge("celery_queue_length", "Messages waiting", ["queue"])
    workers_up = Gauge("celery_workers_up", "Workers answering a ping")
    runtime = Histogram("celery_task_runtime_seconds", "Task runtime", ["task"], buckets=(1, 5, 15, 60, 300, 900, 3600))
    outcomes = Counter("celery_tasks_total", "Finished tasks", ["task", "state"])
    names: dict[str, str] = {}

    def on_event(event: dict[str, Any]) -> None:
        uuid = event.get("uuid", "")
        if event["type"] == "task-received":
            names[uuid] = event.get("name", "?")
        elif event["type"] in ("task-succeeded", "task-failed", "task-retried"):
            task = names.pop(uuid, event.get("name", "?")) if event["type"] != "task-retried" else names.get(uuid, "?")
            outcomes.labels(task, event["type"][5:]).inc()
            if event.get("runtime") is not None:
                runtime.labels(task).observe(float(event["runtime"]))

    def listen() -> None:
        while True:
            try:
                with celery_app.connection() as conn:
                    receiver = celery_app.events.Receiver(conn, handlers={"*": on_event})
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as exc:
                print(f"proxyai metrics: event stream lost ({exc}); reconnecting", file=sys.stderr, flush=True)
                time.sleep(5)

    stop = threading.Event()  # set by a stop signal: a flag, which no library call in the loop can swallow
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    start_http_server(port)
    threading.Thread(target=listen, daemon=True).start()
    print(f"proxyai metrics: serving on :{port}/metrics", file=sys.stderr, flush=True)
    while not stop.is_set():
        try:
            for (queue,), depth in queue_depths(celery_app).items():
                queue_len.labels(queue).set(depth)
            workers_up.set(len(celery_app.control.ping(timeout=1.0) or []))
        except Exception as exc:
            print(f"proxyai metrics: {exc}", file=sys.stderr, flush=True)
        stop.wait(15)
    print("proxyai metrics: stopped", file=sys.stderr, flush=True)
