"""Helpers for the HTTP API tests (imported by ``conftest.py`` and the test modules)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from proxyai.api.app import create_app
from proxyai.config import Settings, load_settings
from proxyai.context import Context
from proxyai.worker.app import CeleryApp

ADMIN_TOKEN = "admin-token-for-tests-7c2f"
# generous limits everywhere except where a test sets its own
RELAXED_LIMITS = {
    "rate_limit_upload": "1000/minute",
    "rate_limit_results": "1000/minute",
    "rate_limit_health": "1000/minute",
    "rate_limit_metrics": "1000/minute",
}
DIALOGUE = "dialogue_2spk.wav"
SHORT_STEREO = "stereo_diarization.wav"


@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" or "postgresql"
    url: str | None  # None: SQLite in the app's data folder (fresh per app)


class ApiClient(TestClient):
    """A TestClient for one app; the app carries its own context and job queue (``app.state``), so
    several apps live side by side in the test process."""

    def __init__(self, app: Any, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    @property
    def ctx(self) -> Context:
        ctx: Context = self.app.state.ctx  # type: ignore[attr-defined]
        return ctx

    @property
    def celery(self) -> CeleryApp:
        celery: CeleryApp = self.app.state.celery  # type: ignore[attr-defined]
        return celery

    def task(self, name: str) -> Any:
        """The app's own copy of a task (``prepare_job``, …): run with ``.apply`` it uses the app's context."""
        return self.celery.tasks[f"proxyai.{name}"]

    # helpers
    def new_user(self, name: str = "user") -> str:
        response = self.post("/admin/users", json={"name": name}, headers={"X-Admin-Token": ADMIN_TOKEN})
        assert response.status_code == 201, response.text
        key: str = response.json()["api_key"]
        return key

    def new_user_id(self, key: str) -> str:
        user = self.ctx.store.user_by_key(key)
        assert user is not None
        return user.id

    def upload(
        self,
        key: str | None,
        content: bytes,
        filename: str = "audio.wav",
        fields: dict[str, str] | None = None,
        path: str = "/upload/",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"X-API-Key": key} if key else {}
        all_headers.update(headers or {})
        return self.post(path, files={"file": (filename, content)}, data=fields or {}, headers=all_headers)

    def uploads_folder_files(self) -> list[Path]:
        """Everything in the uploads folder (temporary ``.incoming-*`` files too)."""
        return sorted(self.settings.uploads.iterdir())


def build_api(data_dir: Path, database_url: str | None, **overrides: Any) -> ApiClient:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "celery_task_always_eager": True,
        "warmup": False,
        "admin_token": ADMIN_TOKEN,
        "database_url": database_url,
        **RELAXED_LIMITS,
    }
    values.update(overrides)
    settings = load_settings(**values)
    return ApiClient(create_app(settings), settings)


def close_api(client: ApiClient) -> None:
    client.close()
    client.celery.close()
    client.ctx.store.engine.dispose()


@dataclass
class DoneJob:
    api: ApiClient
    database: Database
    owner: str  # API key of the job's owner
    other: str  # API key of another user
    upload_id: str
    audio: bytes
    upload_response: httpx.Response
    correlation_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.owner}

    @property
    def other_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.other}


def assert_error(response: httpx.Response, status: int, *, mentions: str | None = None) -> dict[str, Any]:
    """An error response: the status, a JSON body with a ``detail``, a correlation id."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert "detail" in body, body
    assert response.headers.get("x-correlation-id"), response.headers
    if mentions is not None:
        assert mentions.lower() in str(body["detail"]).lower(), body
    return body
