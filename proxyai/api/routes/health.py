"""``GET /health`` and ``GET /metrics``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from proxyai import __version__
from proxyai.api.deps import RATE_LIMITED, Ctx, Queue, rate_limit
from proxyai.api.schemas import Health
from proxyai.observability import render_metrics
from proxyai.worker.app import CPU_QUEUE, GPU_QUEUE, CeleryApp

router = APIRouter(tags=["service"])
HEALTH_TIMEOUT_S = 0.9  # /health answers within a second whatever hangs behind it


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
    responses={503: {"model": Health, "description": "the database or the broker cannot be reached"}, **RATE_LIMITED},
)
async def health(ctx: Ctx, celery: Queue, response: Response) -> Health:
    """``ok`` (200) when the database and the broker answer and the upload and results folders can be
    written; ``failing`` (503, naming what failed and why) otherwise, so that a load balancer or an
    orchestrator takes this instance out."""
    failing: dict[str, str] = {}

    async def check(name: str, probe: Callable[[], Any]) -> None:
        try:  # each in the thread pool, all at once, and none waited for longer than HEALTH_TIMEOUT_S
            problems = await asyncio.wait_for(run_in_threadpool(probe), HEALTH_TIMEOUT_S)
        except TimeoutError:
            failing[name] = f"no answer within {HEALTH_TIMEOUT_S} s"
        except Exception as exc:
            failing[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            for folder, problem in (problems or {}).items():
                failing[f"{name}.{folder}"] = f"cannot write: {problem}"

    await asyncio.gather(
        check("database", ctx.store.ping),
        check("broker", lambda: _broker_check(celery)),
        check("storage", ctx.files.check_writable),
    )
    backend = ctx.settings.diarization_backend
    if failing:
        response.status_code = 503
        return Health(status="failing", version=__version__, diarization=backend, failing=failing)
    return Health(status="ok", version=__version__, diarization=backend)


@router.get("/metrics", dependencies=[rate_limit("metrics")], response_class=Response, responses=RATE_LIMITED)
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
