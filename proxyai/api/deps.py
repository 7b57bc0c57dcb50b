"""Dependencies: the app's context and job queue (both in ``app.state``), the caller (``X-API-Key``),
the admin token, rate limits."""

from __future__ import annotations

import hmac
import math
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from proxyai.api.middleware import BODY_LIMIT
from proxyai.api.schemas import Responses, problem
from proxyai.context import Context
from proxyai.store.db import Job, User
from proxyai.worker.app import CeleryApp

# what the dependencies below may answer, for the routes' ``responses`` (the OpenAPI document)
KEY_REQUIRED: Responses = {401: problem("no X-API-Key header, or a key that is not valid")}
BAD_INPUT: Responses = {422: problem("a bad parameter or body: the detail names it")}
OWNED_JOB: Responses = {**KEY_REQUIRED, 404: problem("no upload of the caller's with this id"), **BAD_INPUT}
ADMIN_ONLY: Responses = {
    403: problem("the X-Admin-Token header is missing or wrong"),
    404: problem("the admin endpoint is off (ADMIN_TOKEN is not set)"),
}
RATE_LIMITED: Responses = {429: problem("too many requests from this client (or with this key); see Retry-After")}
JSON_BODY: Responses = {  # FastAPI reads the body (before any dependency); BodyLimit caps it
    400: problem("a body that cannot be read (not UTF-8)"),
    413: problem(f"the request body is larger than {BODY_LIMIT} bytes"),
}


async def get_ctx(request: Request) -> Context:  # async: no thread hop for a lookup
    ctx: Context = request.app.state.ctx
    return ctx


Ctx = Annotated[Context, Depends(get_ctx)]


async def get_celery(request: Request) -> CeleryApp:
    celery: CeleryApp = request.app.state.celery
    return celery


Queue = Annotated[CeleryApp, Depends(get_celery)]


# The look-ups below query the database in the thread pool, never on the event loop: a database that
# hangs holds up the requests that need it, not /health, the page or the other requests. (They stay
# async so that what they bind to the log context stays with the request.)
async def current_user(ctx: Ctx, x_api_key: Annotated[str | None, Header()] = None) -> User:
    if not x_api_key:
        raise HTTPException(401, "an X-API-Key header is required")
    user = await run_in_threadpool(ctx.store.user_by_key, x_api_key.strip())
    if user is None:
        raise HTTPException(401, "the API key is not valid")
    structlog.contextvars.bind_contextvars(user_id=user.id)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_admin(ctx: Ctx, x_admin_token: Annotated[str | None, Header()] = None) -> None:
    token = ctx.settings.admin_token
    if token is None:
        raise HTTPException(404, "not found: the admin endpoint is off (set ADMIN_TOKEN to turn it on)")
    given = (x_admin_token or "").encode("utf-8", "surrogateescape")  # bytes: any header compares, none raises
    if not given or not hmac.compare_digest(given, token.get_secret_value().encode("utf-8", "surrogateescape")):
        raise HTTPException(403, "the X-Admin-Token header is missing or wrong")


async def owned_job(ctx: Ctx, user: CurrentUser, upload_id: str) -> Job:
    """The caller's job, or 404 (also for anyone else's, so ids cannot be probed; and for what is not a
    job id at all, before any query)."""
    try:
        uuid.UUID(upload_id)
    except ValueError:
        raise HTTPException(404, f"no upload {upload_id[:100]!r}") from None
    job = await run_in_threadpool(ctx.store.get_job, upload_id, user.id)
    if job is None:
        raise HTTPException(404, f"no upload {upload_id}")
    structlog.contextvars.bind_contextvars(upload_id=upload_id)
    return job


OwnedJob = Annotated[Job, Depends(owned_job)]


COUNTER_TIMEOUT_S = 0.5  # a rate-limit counter store (Redis) that does not answer in this lets requests through


@dataclass
class RateLimits:
    """Per-client-address limits (the ``limits`` library), in Redis when Redis is configured so that
    they hold across API processes, else in this process's memory. A counter in Redis is counted in the
    thread pool with a socket timeout, so a Redis that hangs delays a request by at most
    :data:`COUNTER_TIMEOUT_S` and never stops the event loop."""

    strategy: Any
    items: dict[str, Any]
    remote: bool = False

    @classmethod
    def build(cls, storage_uri: str, limits: dict[str, str]) -> RateLimits:
        from limits import parse
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        remote = not storage_uri.startswith("memory://")
        options: dict[str, float] = {}
        if storage_uri.startswith(("redis://", "rediss://")):
            options = {"socket_timeout": COUNTER_TIMEOUT_S, "socket_connect_timeout": COUNTER_TIMEOUT_S}
        storage = storage_from_string(storage_uri, **options)
        items = {name: parse(value) for name, value in limits.items()}
        return cls(MovingWindowRateLimiter(storage), items, remote)

    async def check(self, name: str, key: str) -> None:
        if self.remote:
            await run_in_threadpool(self._check, name, key)
        else:  # a counter in memory: quick, no thread hop
            self._check(name, key)

    def _check(self, name: str, key: str) -> None:
        item = self.items[name]
        try:
            allowed = self.strategy.hit(item, "proxyai", name, key)
            reset = None if allowed else self.strategy.get_window_stats(item, "proxyai", name, key).reset_time
        except Exception as exc:  # the counter store (Redis) is down or hangs: serve rather than fail
            structlog.get_logger("proxyai.api").warning("rate limit store unreachable", error=str(exc)[:200])
            return
        if reset is not None:
            retry = max(1, math.ceil(reset - time.time()))
            raise HTTPException(
                429,
                f"too many requests: at most {item} per client; try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def rate_limit(name: str, per_key: bool = False) -> Any:
    """A dependency that counts this request against the ``name`` limit: per client address, and with
    ``per_key`` (routes behind ``X-API-Key``) per key too, counted only once the key is checked, so that
    requests without a valid key use no one's allowance and spreading requests over addresses does not
    multiply one key's."""

    async def by_address(request: Request) -> None:
        limits: RateLimits = request.app.state.rate_limits
        await limits.check(name, client_address(request))

    async def by_address_and_key(request: Request, user: CurrentUser) -> None:
        limits: RateLimits = request.app.state.rate_limits
        await limits.check(name, client_address(request))
        await limits.check(name, f"key:{user.id}")

    return Depends(by_address_and_key if per_key else by_address)
