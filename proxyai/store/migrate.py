"""Alembic, driven from code: ``upgrade(engine)`` brings any database to the newest revision."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def config(url: str | None = None) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


LOCK_KEY = 7_304_311_845  # pg_advisory_lock key of proxyAI's migrations


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade under a lock, so that processes starting together (workers, API) migrate one at a time."""
    from alembic import command

    cfg = config()
    with _lock(engine), engine.begin() as connection:
        cfg.attributes["connection"] = connection  # type: ignore[attr-defined]
        command.upgrade(cfg, revision)  # type: ignore[arg-type]


@contextmanager
def _lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({LOCK_KEY})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_KEY})")
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate-lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
