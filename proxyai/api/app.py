"""``create_app()``: the FastAPI application (OpenAPI at ``/docs``; every error a JSON ``{"detail": …}``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from proxyai import __version__
from proxyai.api.deps import RateLimits
from proxyai.api.middleware import BodyLimit, RequestContext
from proxyai.api.routes import admin, health, jobs, uploads
from proxyai.config import Settings, get_settings
from proxyai.context import Context, make_context
from proxyai.observability import configure_logging, get_logger
from proxyai.worker.app import make_celery

log = get_logger("proxyai.api")
STATIC = Path(__file__).resolve().parent.parent / "static"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.celery.close()  # its broker connections
    app.state.ctx.store.engine.dispose()


def create_app(settings: Settings | None = None, context: Context | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    ctx = context or make_context(settings)
    app = FastAPI(
        lifespan=_lifespan,
        docs_url=None,  # served below from local files (no CDN)
        redoc_url=None,
        title="proxyAI",
        version=__version__,
        description="Speaker-attributed transcripts: upload a recording, follow its status, read who said what.",
    )
    app.state.ctx = ctx
    # the app's own job queue, carrying its context to the tasks it runs eagerly (not the process's
    # current Celery app: several apps may live in one process, as in the tests)
    app.state.celery = make_celery(settings, ctx, set_as_current=False)
    app.state.rate_limits = RateLimits.build(
        settings.limiter_storage,
        {
            "upload": settings.rate_limit_upload,
            "results": settings.rate_limit_results,
            "health": settings.rate_limit_health,
            "metrics": settings.rate_limit_metrics,
        },
    )
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Correlation-ID", "Retry-After", "Content-Disposition"],
        )

    app.add_middleware(BodyLimit)  # inside RequestContext: its 413 gets the correlation id and headers
    app.add_middleware(RequestContext)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.detail}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of the first route on the path only
            headers["Allow"] = ", ".join(_methods_on(app, request.scope))
        if "X-Job-Status" in headers:
            body["status"] = headers["X-Job-Status"]
            body["upload_id"] = request.path_params.get("upload_id")
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}" for e in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    for router in (uploads.router, jobs.router, admin.router, health.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _local_docs(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The demo page (works offline: no CDN, no build step)."""
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Content-Security-Policy": (
                    "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'"
                )
            },
        )

    return app


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _methods_on(app: FastAPI, scope: MutableMapping[str, Any]) -> list[str]:
    """Every method some route of ``app`` answers on the request's path (each route asked, as the router
    asks it, whether it takes the path with that method)."""
    probe = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""), "headers": []}
    routes = app.router.routes
    return [m for m in _METHODS if any(r.matches({**probe, "method": m})[0] is Match.FULL for r in routes)]


def _local_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from the files of the ``swagger-ui-bundle`` package: nothing loaded from a
    CDN on the origin where the page keeps the API key, and a CSP that would block it if it were."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
        page.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'"
        )
        return page


__all__ = ["HTTPException", "create_app"]
