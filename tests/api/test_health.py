"""Health, metrics, CORS, the OpenAPI document, and JSON errors."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from api_helpers import ApiClient, DoneJob, assert_error, build_api, close_api
from sqlalchemy.engine import make_url

from proxyai import __version__

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_health_is_ok(api: ApiClient) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__ == "13.7.6.1"
    assert body["diarization"] == "embedded"  # DIARIZATION_BACKEND's default
    assert not body.get("failing")


def test_health_fails_with_503_when_the_broker_is_down(make_sqlite_api: Callable[..., ApiClient]) -> None:
    """A load balancer reads the status code only: an instance that cannot queue work must answer 503."""
    api = make_sqlite_api(celery_broker_url=DEAD_REDIS, rate_limit_storage_url="memory://")
    response = api.get("/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "failing"
    assert body["version"] == __version__
    assert set(body["failing"]) == {"broker"}
    assert body["failing"]["broker"]


def test_health_reports_a_dead_redis_broker_instead_of_failing(make_sqlite_api: Callable[..., ApiClient]) -> None:
    """With a Redis broker the rate limits are counted in that Redis too (``Settings.limiter_storage``).
    When it is down, /health must still answer (503 "failing", naming the broker); a monitor that gets a
    500 "internal error" cannot tell what is wrong."""
    api = make_sqlite_api(celery_broker_url=DEAD_REDIS)
    response = api.get("/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "failing"
    assert "broker" in body["failing"]


class TcpProxy:
    """Forwards a local port to ``upstream``; :meth:`cut` closes it and every connection through it, the
    way a database host that goes away looks to its clients."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_health_fails_with_503_when_the_database_is_unreachable(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL reached through a proxy that is then cut: /health names the database, 503; the broker
    (embedded, a file of its own) still answers."""
    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    api = build_api(tmp_path, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        assert api.get("/health").status_code == 200
        proxy.cut()
        response = api.get("/health")
    finally:
        close_api(api)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "failing"
    assert set(body["failing"]) == {"database"}


def test_metrics(done: DoneJob) -> None:
    done.api.get(f"/status/{done.upload_id}", headers=done.headers)
    response = done.api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "vad_segmentation_seconds_count",
        "whisper_transcription_seconds_count",
        "celery_task_runs_total",
        "proxyai_queue_depth",
    ):
        assert re.search(rf"^{name}[{{ ]", text, re.M), name
    # requests are counted by route template, not by id
    assert re.search(r'^http_requests_total\{method="GET",path="/status/\{upload_id\}",status="200"\} \d', text, re.M)
    assert done.upload_id not in text
    # the pipeline ran in this process: its stages and tasks are counted
    runs = re.search(
        r'^celery_task_runs_total\{outcome="success",task="proxyai.transcribe_segments"\} (\S+)', text, re.M
    )
    assert runs and float(runs.group(1)) >= 1
    assert float(re.search(r"^whisper_transcription_seconds_count (\S+)", text, re.M).group(1)) >= 1  # type: ignore[union-attr]
    # jobs by status, from this app's database
    jobs = re.search(r'^proxyai_jobs\{status="done"\} (\S+)', text, re.M)
    assert jobs and float(jobs.group(1)) >= 1
    assert re.search(r'^proxyai_queue_depth\{queue="preprocess_cpu"\} \S+', text, re.M)


def test_metrics_are_rate_limited(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(rate_limit_metrics="1/minute")
    assert api.get("/metrics").status_code == 200
    assert_error(api.get("/metrics"), 429)


# --- CORS ------------------------------------------------------------------------------------------


def test_cors_allows_only_the_configured_origin(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(allowed_origins=["https://app.example"])
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}

    response = api.options("/upload/", headers={"Origin": "https://app.example", **preflight})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-api-key" in response.headers["access-control-allow-headers"].lower()
    response = api.get("/health", headers={"Origin": "https://app.example"})
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-correlation-id" in response.headers["access-control-expose-headers"].lower()

    for origin in ("https://evil.example", "https://app.example.evil", "http://app.example"):
        response = api.options("/upload/", headers={"Origin": origin, **preflight})
        assert "access-control-allow-origin" not in response.headers, origin
        response = api.get("/health", headers={"Origin": origin})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers, origin


def test_cors_from_a_comma_separated_setting(make_sqlite_api: Callable[..., ApiClient]) -> None:
    api = make_sqlite_api(allowed_origins="https://a.example, https://b.example")
    for origin in ("https://a.example", "https://b.example"):
        assert api.get("/health", headers={"Origin": origin}).headers["access-control-allow-origin"] == origin


def test_no_cors_headers_without_allowed_origins(sqlite_api: ApiClient) -> None:
    response = sqlite_api.get("/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


# --- OpenAPI ---------------------------------------------------------------------------------------


def test_openapi_lists_every_endpoint(sqlite_api: ApiClient) -> None:
    docs = sqlite_api.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    spec = sqlite_api.get("/openapi.json").json()
    assert spec["info"]["version"] == __version__
    paths = spec["paths"]
    for path, method in [
        ("/upload/", "post"),
        ("/transcribe", "post"),
        ("/status/{upload_id}", "get"),
        ("/results/{upload_id}", "get"),
        ("/results/{upload_id}", "delete"),
        ("/labels/{upload_id}", "get"),
        ("/labels/{upload_id}", "post"),
        ("/jobs", "get"),
        ("/audio/{upload_id}", "get"),
        ("/admin/users", "post"),
        ("/health", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from the OpenAPI document"
    for code in ("413", "415", "422", "429"):
        assert code in paths["/upload/"]["post"]["responses"]


def test_openapi_documents_the_errors_as_they_are_sent(sqlite_api: ApiClient) -> None:
    """Every error is documented as the JSON ``{"detail": "…"}`` the app sends (never FastAPI's list of
    validation errors), the key's 401 wherever a key is asked, and the upload's multipart form."""
    spec = sqlite_api.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["Problem"]["properties"]["detail"]["type"] == "string"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for code, response in responses.items():
                if code.startswith(("4", "5")) and path != "/health":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith(("/Problem", "/JobNotDone")), (method, path, code)
            if path not in ("/health", "/metrics", "/admin/users"):
                assert "401" in responses, (method, path)
    form = spec["paths"]["/upload/"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    assert form["properties"]["channels"]["enum"] == ["auto", "mix", "split"]
    fmt = next(p for p in spec["paths"]["/results/{upload_id}"]["get"]["parameters"] if p["name"] == "format")
    assert fmt["schema"]["enum"] == ["json", "srt", "vtt", "txt", "rttm"]


# --- errors are JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/route", 404),
        ("DELETE", "/health", 405),
        ("PUT", "/upload/", 405),
        ("GET", "/jobs", 401),
        ("POST", "/admin/users", 403),
    ],
)
def test_errors_are_json_with_a_detail(sqlite_api: ApiClient, method: str, path: str, status: int) -> None:
    assert_error(sqlite_api.request(method, path), status)
