"""Per-request context as plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): the
correlation id (echoed, or generated), log context, HTTP metrics, one log line per request, and a JSON
500 for anything unhandled."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException

from proxyai.observability import HTTP_DURATION, HTTP_REQUESTS, get_logger

log = get_logger("proxyai.api")
Scope = dict[str, Any]


# on every response: no type sniffing (an upload is never run as a page), never framed (clickjacking)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class RequestContext:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # echoed in a header: no whitespace at either end, also where the cut falls (h11 refuses to send
        # such a value, and the client gets no response at all)
        sent = dict(scope["headers"]).get(b"x-correlation-id", b"").decode("latin-1").strip()[:64].rstrip()
        correlation_id = sent or uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        headers = [(b"x-correlation-id", correlation_id.encode("latin-1")), *SECURITY_HEADERS]
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", path=scope.get("path"))
            if not started:
                await send_json(send_with_id, 500, "internal error")
        elapsed = time.perf_counter() - start
        route = getattr(scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
        HTTP_DURATION.labels(scope["method"], route).observe(elapsed)
        upload = scope.get("state", {}).get("upload_id") or scope.get("path_params", {}).get("upload_id")
        log.info(
            "request",
            method=scope["method"],
            path=scope.get("path"),
            status=status,
            ms=round(elapsed * 1000, 1),
            **({"upload_id": upload} if upload else {}),
        )


BODY_LIMIT = 64_000  # bytes of a request body (but an upload's)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` as a body passes the limit: an HTTPException, so that FastAPI's body
    parsing lets it through and the app answers it as JSON (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """Caps the body of every request but the uploads (which stream to disk under their own limit) at
    ``limit`` bytes, before anything parses it: a declared length over it is 413 at once, a longer
    chunked body is cut off with 413 as soon as it passes. (FastAPI reads a JSON body before it checks
    the API key, so without this a 100 MB body to ``/labels`` with no key is parsed and held.)"""

    def __init__(
        self, app: Any, limit: int = BODY_LIMIT, exempt: tuple[str, ...] = ("/upload/", "/transcribe")
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        await send_json(send, 413, BodyTooLarge(self.limit).detail)


async def send_json(send: Any, status: int, detail: str) -> None:
    """A whole JSON error response ``{"detail": …}``, sent from middleware (outside the app's handlers)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
