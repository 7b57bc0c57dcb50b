"""Running the service's processes: API, worker, beat, the Celery exporter, and all of them at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from proxyai.config import Settings


def prepare_metrics_dir(settings: Settings) -> None:
    """Share Prometheus metrics between this machine's processes (must run before prometheus_client is
    imported)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = (settings.data_dir / "metrics").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def local_key(settings: Settings) -> tuple[str | None, Path]:
    """On a machine with no users yet, create ``local`` and keep its key in ``data/local-api-key``."""
    from proxyai.context import make_context

    ctx = make_context(settings)
    path = settings.data_dir / "local-api-key"
    if ctx.store.count_users() == 0:
        _, key = ctx.store.create_user("local")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key, path
    if path.exists():
        return path.read_text().strip(), path
    return None, path


def run_api(settings: Settings, host: str, port: int, workers: int | None = None) -> None:
    import uvicorn

    from proxyai.context import make_context

    make_context(settings)  # migrate once, before any worker process starts
    uvicorn.run(
        "proxyai.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        log_config=None,
        access_log=False,
    )


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
    from proxyai.context import make_context
    from proxyai.worker.app import celery_app

    make_context(settings)
    celery_app.worker_main(worker_argv(queues, concurrency, pool, beat))


def run_beat(settings: Settings) -> None:
    from proxyai.worker.app import celery_app

    schedule = settings.data_dir / "beat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel", "INFO", "-s", str(schedule)])


def serve(settings: Settings, host: str, port: int) -> int:
    """The API and a worker (both queues, with the daily clean-up) on this machine, no other server."""
    prepare_metrics_dir(settings)
    key, path = local_key(settings)
    if key:
        print(f"proxyai: API key for this machine: {key}  (kept in {path})", file=sys.stderr, flush=True)
    concurrency = max(2, settings.cpu_concurrency + settings.gpu_concurrency)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxyai.cli",
            "worker",
            "--queues",
            "preprocess_cpu,preprocess_gpu",
            "--concurrency",
            str(concurrency),
            "--pool",
            "threads",
            "--beat",
        ],
        env=os.environ.copy(),
    )

    lock = threading.Lock()
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        with lock:
            stopping.set()
            if worker.poll() is None:
                worker.terminate()

    def watch() -> None:
        """A worker that crashed is restarted (the jobs it held are redelivered); one that was asked to
        stop (exit 0, SIGTERM, SIGINT: the whole service is stopping) is not."""
        nonlocal worker
        delay = 1.0
        while True:
            code = worker.wait()
            if code in (0, -signal.SIGTERM, -signal.SIGINT):
                return
            time.sleep(delay)
            delay = min(delay * 2, 30.0)  # a worker that cannot start is retried ever more slowly
            with lock:
                if stopping.is_set():
                    return
                print(f"proxyai: the worker exited ({code}); restarting it", file=sys.stderr, flush=True)
                worker = subprocess.Popen(worker.args, env=os.environ.copy())

    threading.Thread(target=watch, daemon=True).start()
    try:  # uvicorn returns on SIGINT and SIGTERM
        run_api(settings, host, port, workers=1)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    return 0


def run_exporter(settings: Settings, port: int) -> None:
    """A Prometheus exporter for Celery: queue lengths, task runtimes and outcomes, workers up."""
    from prometheus_client import Counter, Gauge, Histogram, start_http_server

    from proxyai.api.routes.health import queue_depths
    from proxyai.context import make_context
    from proxyai.worker.app import celery_app

    ctx = make_context(settings, migrate=False)
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

    start_http_server(port)
    threading.Thread(target=listen, daemon=True).start()
    print(f"proxyai metrics: serving on :{port}/metrics", file=sys.stderr, flush=True)
    while True:
        try:
            for (queue,), depth in queue_depths(ctx).items():
                queue_len.labels(queue).set(depth)
            workers_up.set(len(celery_app.control.ping(timeout=1.0) or []))
        except Exception as exc:
            print(f"proxyai metrics: {exc}", file=sys.stderr, flush=True)
        time.sleep(15)
