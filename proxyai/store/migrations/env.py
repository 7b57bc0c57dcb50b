"""Alembic environment: runs on the connection handed over by proxyai.store.migrate, or on the URL
from the config (``alembic -x`` use from a shell)."""

from alembic import context
from sqlalchemy import create_engine

from proxyai.store.db import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    context.run_migrations()


run()
