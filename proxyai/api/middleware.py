"""Per-request context as plain ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware): the
correlation id (echoed, or generated), log context, HTTP metrics, one log line per request, and a JSON
500 for anything unhandled."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import structlog

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
        sent = dict(scope["headers"]).get(b"x-correlation-id", b"").decode("latin-1").strip()[:64]
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
                body = json.dumps({"detail": "internal error"}).encode()
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                    }
                )
                await send({"type": "http.response.body", "body": body})
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
