"""``GET /health`` and ``GET /metrics``."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from proxyai import __version__
from proxyai.api.deps import Ctx, Queue, rate_limit
from proxyai.api.schemas import Health
from proxyai.observability import render_metrics
from proxyai.worker.app import CPU_QUEUE, GPU_QUEUE, CeleryApp

router = APIRouter(tags=["service"])


def _broker_check(celery: CeleryApp) -> None:
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def queue_depths(celery: CeleryApp) -> dict[tuple[str, ...], float]:
    """Messages waiting in each queue (Redis: list length; embedded: rows in the broker table)."""
    depths: dict[tuple[str, ...], float] = {}
    with celery.connection_for_read() as conn:
        for queue in (CPU_QUEUE, GPU_QUEUE):
            try:
                _, count, _ = conn.default_channel.queue_declare(queue, passive=True)
            except Exception:
                count = 0
            depths[(queue,)] = float(count or 0)
    return depths


@router.get(
    "/health",
    response_model=Health,
    dependencies=[rate_limit("health")],
    responses={503: {"model": Health, "description": "the database or the broker cannot be reached"}},
)
async def health(ctx: Ctx, celery: Queue, response: Response) -> Health:
    """``ok`` (200) when the database and the broker answer and the upload and results folders can be
    written; ``failing`` (503, naming what failed and why) otherwise, so that a load balancer or an
    orchestrator takes this instance out."""
    failing: dict[str, str] = {}
    for name, check in (("database", lambda: ctx.store.ping()), ("broker", lambda: _broker_check(celery))):
        try:
            await run_in_threadpool(check)
        except Exception as exc:
            failing[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
    for folder, problem in (await run_in_threadpool(ctx.files.check_writable)).items():
        failing[f"storage.{folder}"] = f"cannot write: {problem}"
    if failing:
        response.status_code = 503
        return Health(status="failing", version=__version__, failing=failing)
    return Health(status="ok", version=__version__)


@router.get("/metrics", dependencies=[rate_limit("metrics")], response_class=Response)
async def metrics(ctx: Ctx, celery: Queue) -> Response:
    """Prometheus text: HTTP, pipeline stages, task runs, jobs by status, queue depth."""

    def collect() -> bytes:
        extra: dict[str, dict[tuple[str, ...], Any]] = {}
        with contextlib.suppress(Exception):  # a database outage must not hide the other metrics
            extra["proxyai_jobs"] = {(k,): float(v) for k, v in ctx.store.counts_by_status().items()}
        with contextlib.suppress(Exception):
            extra["proxyai_queue_depth"] = queue_depths(celery)
        return render_metrics(extra)

    body = await run_in_threadpool(collect)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
