"""Uploads and results on disk: one folder per job, every write atomic (temp file + rename)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=64)
def _parsed(path: str, version: tuple[int, int, int]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class Files:
    def __init__(self, uploads: Path, results: Path) -> None:
        self.uploads = Path(uploads)
        self.results = Path(results)
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)

    def upload_path(self, job_id: str) -> Path:
        return self.uploads / job_id

    def result_dir(self, job_id: str) -> Path:
        return self.results / job_id

    def prepared_dir(self, job_id: str) -> Path:
        """The decoded samples and speech map of a job (``proxyai.pipeline.prepared``)."""
        return self.result_dir(job_id) / "prepared"

    def part_path(self, job_id: str, part: str) -> Path:
        return self.result_dir(job_id) / f"{part}.json"

    def check_writable(self) -> dict[str, str]:
        """The folders this process cannot create a file in (read-only, missing, no permission), with
        why: checked by creating and removing one, which also holds for root and read-only mounts."""
        problems = {}
        for name, folder in (("uploads", self.uploads), ("results", self.results)):
            try:
                fd, tmp = tempfile.mkstemp(prefix=".health-", dir=folder)
                os.close(fd)
                os.unlink(tmp)
            except OSError as exc:
                problems[name] = f"{folder}: {exc.strerror or exc}"
        return problems

    def new_upload(self) -> tuple[int, str]:
        """A temporary file in the uploads folder (same file system, so the final rename is atomic)."""
        return tempfile.mkstemp(prefix=".incoming-", dir=self.uploads)

    def keep_upload(self, tmp: str, job_id: str) -> Path:
        target = self.upload_path(job_id)
        os.replace(tmp, target)
        return target

    def write_json(self, job_id: str, part: str, data: Any) -> Path:
        folder = self.result_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{part}-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            target = self.part_path(job_id, part)
            os.replace(tmp, target)
            return target
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_json(self, job_id: str, part: str) -> Any | None:
        """A part as saved, parsed once per version of the file (results are read far more often than
        written: the parsed copy is shared, never to be mutated)."""
        path = self.part_path(job_id, part)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return _parsed(str(path), (stat.st_mtime_ns, stat.st_size, stat.st_ino))

    def delete(self, job_id: str) -> None:
        self.upload_path(job_id).unlink(missing_ok=True)
        shutil.rmtree(self.result_dir(job_id), ignore_errors=True)

    def stale_incoming(self, idle_s: float) -> list[Path]:
        """Partial uploads (``.incoming-*``) not written to for ``idle_s`` seconds: left by an API that
        crashed or a client that went away mid-upload (a live upload touches its file continuously)."""
        cutoff = time.time() - idle_s
        out = []
        for path in self.uploads.glob(".incoming-*"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    out.append(path)
        return out

    def orphans(self, known: set[str]) -> list[Path]:
        """Files and folders that belong to no job (left by a crash or a deleted row)."""
        out = [p for p in self.uploads.iterdir() if p.name not in known and not p.name.startswith(".incoming-")]
        out += [p for p in self.results.iterdir() if p.name not in known]
        return out
