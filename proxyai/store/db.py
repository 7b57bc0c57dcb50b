"""Jobs, users and speaker labels in SQL (SQLite by default, PostgreSQL by ``DATABASE_URL``).

The schema is created and upgraded by Alembic (``proxyai/store/migrations``); this module holds the
tables and the queries, nothing else touches SQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from proxyai.jobs import ACTIVE, JobOptions, Part, Stage, Status, overall_progress

STATUSES = tuple(s.value for s in Status)


def now() -> datetime:
    return datetime.now(timezone.utc)


def utc(moment: datetime) -> datetime:
    """A time read back from the database, aware (SQLite gives it back naive, in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED, index=True)
    stage: Mapped[str] = mapped_column(String(32), default=Stage.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    asr_progress: Mapped[float] = mapped_column(Float, default=0.0)
    diar_progress: Mapped[float] = mapped_column(Float, default=0.0)
    asr_done: Mapped[bool] = mapped_column(Boolean, default=False)
    diar_done: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    filename: Mapped[str] = mapped_column(String(255), default="audio")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    options: Mapped[str] = mapped_column(Text, default="{}")
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, onupdate=now)

    def options_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.options or "{}"))

    def job_options(self) -> JobOptions:
        """The options the job was created with (validated when it was)."""
        return JobOptions.parse(self.options_dict())


class Label(Base):
    __tablename__ = "labels"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    speaker: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Lease(Base):
    """A part of a job being run: by ``holder`` (host, process, task), renewed until ``expires_at``
    (seconds since the epoch); an expired lease is a part whose worker died."""

    __tablename__ = "leases"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    part: Mapped[str] = mapped_column(String(16), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float, index=True)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def private_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable by its owner only, or make it so: an SQLite database
    holds key hashes and everyone's jobs (SQLite gives its WAL and shared-memory files the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it meanwhile
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with contextlib.suppress(PermissionError):  # someone else's file (a shared volume): left as it is
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


class Store:
    """The database: sessions and every query the API and workers need."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                private_file(Path(path))
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        elif url.startswith("postgresql"):
            # a server that does not answer: give up connecting after 10 s; a statement after 60 s
            kwargs["connect_args"] = {"connect_timeout": 10, "options": "-c statement_timeout=60000"}
            kwargs["pool_timeout"] = 10
        self.engine: Engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision."""
        from proxyai.store.migrate import upgrade

        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    # users
    @staticmethod
    def hash_key(api_key: str) -> str:
        return hashlib.sha256(api_key.encode()).hexdigest()

    def create_user(self, name: str) -> tuple[User, str]:
        api_key = "pk_" + secrets.token_urlsafe(32)
        with self.session() as s:
            user = User(name=name, key_hash=self.hash_key(api_key))
            s.add(user)
        return user, api_key

    def user_by_key(self, api_key: str) -> User | None:
        with self.session() as s:
            return s.scalar(select(User).where(User.key_hash == self.hash_key(api_key)))

    def count_users(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    # jobs
    def create_job(
        self,
        user_id: str | None,
        filename: str,
        size: int,
        duration: float | None,
        options: dict[str, Any],
        correlation_id: str | None,
        job_id: str | None = None,
    ) -> Job:
        with self.session() as s:
            job = Job(
                id=job_id or str(uuid.uuid4()),
                user_id=user_id,
                filename=filename[:255],
                size=size,
                duration=duration,
                options=json.dumps(options),
                correlation_id=correlation_id,
            )
            s.add(job)
        return job

    def get_job(self, job_id: str, user_id: str | None = None) -> Job | None:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None or (user_id is not None and job.user_id != user_id):
                return None
            return job

    def list_jobs(self, user_id: str, limit: int, offset: int) -> tuple[list[Job], int]:
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(Job).where(Job.user_id == user_id)) or 0
            rows = s.scalars(
                select(Job)
                .where(Job.user_id == user_id)
                .order_by(Job.created_at.desc(), Job.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return list(rows), int(total)

    def update_job(self, job_id: str, **values: Any) -> bool:
        values.setdefault("updated_at", now())
        with self.session() as s:
            result = s.execute(update(Job).where(Job.id == job_id).values(**values))
            return bool(getattr(result, "rowcount", 0))

    def start_part(self, job_id: str, stage: Stage) -> bool:
        """Mark a job processing (unless it is finished); False when it is gone or done."""
        with self.session() as s:
            result = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(ACTIVE))
                .values(status=Status.PROCESSING, stage=stage, updated_at=now())
            )
            return bool(getattr(result, "rowcount", 0))

    def part_progress(self, job_id: str, part: Part, fraction: float, stage: Stage) -> None:
        column = Job.asr_progress if part == Part.ASR else Job.diar_progress
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.status not in ACTIVE:
                return
            setattr(job, column.key, max(0.0, min(1.0, fraction)))
            job.progress = overall_progress(job.asr_progress, job.diar_progress)
            job.stage = stage
            job.updated_at = now()

    def finish_part(self, job_id: str, part: Part) -> Job | None:
        """Record that ``part`` (``asr`` or ``diarization``) is written; return the job as it is then."""
        flag = Job.asr_done if part == Part.ASR else Job.diar_done
        prog = Job.asr_progress if part == Part.ASR else Job.diar_progress
        with self.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values({flag: True, prog: 1.0, Job.updated_at: now()}))
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is not None:
                job.progress = overall_progress(job.asr_progress, job.diar_progress)
            return job

    def finish_job(self, job_id: str, duration: float | None) -> None:
        self.update_job(job_id, status=Status.DONE, stage=Stage.DONE, progress=100, error=None, duration=duration)

    def fail_job(self, job_id: str, message: str) -> None:
        with self.session() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status != Status.DONE)
                .values(status=Status.FAILED, stage=Stage.FAILED, error=message[:2000], updated_at=now())
            )

    def delete_job(self, job_id: str) -> None:
        with self.session() as s:
            s.execute(delete(Label).where(Label.job_id == job_id))
            s.execute(delete(Lease).where(Lease.job_id == job_id))
            s.execute(delete(Job).where(Job.id == job_id))

    # leases
    def lease_holder(self, job_id: str, part: str) -> str | None:
        with self.session() as s:
            lease = s.get(Lease, (job_id, part))
            return lease.holder if lease is not None else None

    def acquire_lease(
        self, job_id: str, part: str, holder: str, ttl: float, ticket: str | None = None, dead: str | None = None
    ) -> bool:
        """Take the lease on a part of an active job, unless another holder's lease is still live; a lease
        the reaper left for the task it sent (``queued:<ticket>``) goes to that task, and the lease of a
        holder known to be ``dead`` to whoever asks."""
        until = time.time() + ttl
        try:
            with self.session() as s:
                job = s.get(Job, job_id)
                if job is None or job.status not in ACTIVE:
                    return False
                taken = s.execute(  # one statement: two tasks cannot both take over an expired lease
                    update(Lease)
                    .where(
                        Lease.job_id == job_id,
                        Lease.part == part,
                        (Lease.holder == holder)
                        | (Lease.expires_at < time.time())
                        | (Lease.holder == f"queued:{ticket}")
                        | (Lease.holder == (dead or "")),
                    )
                    .values(holder=holder, expires_at=until)
                )
                if getattr(taken, "rowcount", 0):
                    return True
                if s.get(Lease, (job_id, part)) is not None:
                    return False  # held by a live holder
                s.add(Lease(job_id=job_id, part=part, holder=holder, expires_at=until))
        except IntegrityError:  # another task inserted the lease first
            return False
        return True

    def renew_lease(self, job_id: str, part: str, holder: str, ttl: float) -> bool:
        """Extend a lease this holder has; False when it has lost it (expired and taken by another)."""
        with self.session() as s:
            result = s.execute(
                update(Lease)
                .where(Lease.job_id == job_id, Lease.part == part, Lease.holder == holder)
                .values(expires_at=time.time() + ttl)
            )
            return bool(getattr(result, "rowcount", 0))

    def release_lease(self, job_id: str, part: str, holder: str) -> None:
        with self.session() as s:
            s.execute(delete(Lease).where(Lease.job_id == job_id, Lease.part == part, Lease.holder == holder))

    def expired_leases(self) -> list[tuple[Job, str]]:
        """(job, part) for every active job's part whose holder stopped renewing its lease."""
        with self.session() as s:
            rows = s.execute(
                select(Job, Lease.part)
                .join(Lease, Job.id == Lease.job_id)
                .where(Lease.expires_at < time.time(), Job.status.in_(ACTIVE))
            ).all()
            return [(job, str(part)) for job, part in rows]

    def requeue_lease(self, job_id: str, part: str, ticket: str, until: float) -> bool:
        """Hand an expired lease to the task about to be sent as ``ticket`` (kept until ``until``, so
        the part is not sent again while that task waits in its queue); False when it is no longer
        expired (renewed, or already handed on by another reaper)."""
        with self.session() as s:
            result = s.execute(
                update(Lease)
                .where(Lease.job_id == job_id, Lease.part == part, Lease.expires_at < time.time())
                .values(holder=f"queued:{ticket}", expires_at=until)
            )
            return bool(getattr(result, "rowcount", 0))

    def old_jobs(self, days: int) -> list[Job]:
        """Finished jobs (done or failed) older than ``days`` days; running ones never."""
        cutoff = now() - timedelta(days=days)
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.created_at < cutoff, Job.status.not_in(ACTIVE))).all())

    def job_ids(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Job.id)).all())

    def counts_by_status(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    # labels
    def labels(self, job_id: str) -> dict[str, str]:
        with self.session() as s:
            return {row.speaker: row.name for row in s.scalars(select(Label).where(Label.job_id == job_id))}

    def set_labels(self, job_id: str, names: dict[str, str]) -> dict[str, str]:
        with self.session() as s:
            for speaker, name in names.items():
                row = s.get(Label, (job_id, speaker))
                if row is None:
                    s.add(Label(job_id=job_id, speaker=speaker, name=name))
                else:
                    row.name = name
        return self.labels(job_id)
