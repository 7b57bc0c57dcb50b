"""The embedded broker: kombu's SQLAlchemy transport over SQLite, woken by a bell file so that a job
is picked up within milliseconds of its upload without polling the database all the time.

kombu's virtual transports sleep ``polling_interval`` (1 s by default) between empty polls of their
queues, so a job waits half a second on average before a worker sees it; polling the database more
often costs an idle worker a steady share of a core. Here a publisher also sets the modification time
of a bell file beside the database (``broker.db.bell``); a waiting worker looks at the bell's time
every ``BELL_CHECK_S`` (a ``stat``, no query) and polls the queues as soon as it changes, and anyway
every ``polling_interval`` (``BROKER_POLL_INTERVAL``). kombu's own SQLAlchemy channel hands every
transport option to ``create_engine``, which refuses ``polling_interval``: this channel keeps it for
the transport. The transport is registered as ``proxyai`` (a broker URL ``proxyai+sqlite:///…``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as sqla

ALIAS = "proxyai"
SCHEME = f"{ALIAS}+"
BELL_CHECK_S = 0.01  # how often a waiting worker looks at the bell (an idle worker: about 0.5 % of a core)
# options the virtual transport reads itself; none of them is create_engine's
TRANSPORT_ONLY = ("polling_interval",)


def bell_path(database_url: str) -> Path | None:
    """The bell beside an SQLite database (None for another database or one in memory)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or database_url in (prefix, f"{prefix}:memory:"):
        return None
    return Path(database_url[len(prefix) :].split("?", 1)[0] + ".bell")


def ring(bell: Path | None) -> None:
    """Tell waiting workers that a message was published (best effort: they poll anyway)."""
    if bell is None:
        return
    try:
        bell.touch(mode=0o600)
        stamp = time.time_ns()
        os.utime(bell, ns=(stamp, stamp))
    except OSError:
        pass


def _stamp(bell: Path | None) -> int | None:
    try:
        return None if bell is None else bell.stat().st_mtime_ns
    except OSError:
        return None


class Channel(sqla.Channel):
    def _engine_from_config(self) -> Any:
        client = self.connection.client
        kept = {k: client.transport_options.pop(k) for k in TRANSPORT_ONLY if k in client.transport_options}
        try:
            return super()._engine_from_config()  # type: ignore[no-untyped-call]
        finally:
            client.transport_options.update(kept)

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super()._put(queue, payload, **kwargs)  # type: ignore[no-untyped-call]
        ring(bell_path(self.connection.client.hostname or ""))


class Transport(sqla.Transport):
    Channel = Channel

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """Deliver one message; between empty polls wait for the bell (or ``polling_interval``)."""
        started = time.monotonic()
        bell = bell_path(getattr(self.client, "hostname", None) or "")
        cycle = self.cycle
        assert cycle is not None  # set up with the first channel
        while True:
            heard = _stamp(bell)
            try:
                cycle.get(self._deliver, timeout=timeout)  # type: ignore[no-untyped-call]
                return
            except Empty:
                pass
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                raise TimeoutError()
            longest = float(self.polling_interval or 1.0)
            if timeout is not None:
                longest = min(longest, timeout - waited)
            self._wait(bell, heard, longest)

    @staticmethod
    def _wait(bell: Path | None, heard: int | None, seconds: float) -> None:
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(BELL_CHECK_S, left))
            if bell is not None and _stamp(bell) != heard:
                return


def register() -> None:
    """Make ``proxyai+<SQLAlchemy URL>`` broker URLs resolve to :class:`Transport`."""
    TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")


def database_url(broker_url: str) -> str:
    """The SQLAlchemy URL inside an embedded broker URL."""
    return broker_url.removeprefix(SCHEME).removeprefix("sqla+")
