"""The embedded broker (kombu's SQLAlchemy transport over SQLite): a publisher rings a bell file and a
waiting consumer polls at once, else every ``BROKER_POLL_INTERVAL`` (an option kombu's own SQLAlchemy
channel cannot be given: it hands every transport option to ``create_engine``)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from proxyai.config import Settings
from proxyai.worker import broker

broker.register()  # as configure() does for an embedded app


def test_embedded_broker_url_uses_the_polling_transport(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.broker_url.startswith(broker.SCHEME)
    assert broker.database_url(settings.broker_url) == f"sqlite:///{(tmp_path / 'broker.db').resolve()}"
    assert broker.database_url("sqla+sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize("interval", [0.5, 60.0])
def test_a_waiting_consumer_is_woken_by_the_publisher(tmp_path: Path, interval: float) -> None:
    """Published while the consumer waits on an empty queue: delivered within the 10 s the consumer
    waits even when the queues are polled only every minute (the bell)."""
    url = f"{broker.SCHEME}sqlite:///{tmp_path / 'broker.db'}"
    queue = Queue("jobs", Exchange("jobs"), routing_key="jobs")
    got: list[dict[str, str]] = []
    with Connection(url, transport_options={"polling_interval": interval}) as conn:
        assert isinstance(conn.transport, broker.Transport)
        assert conn.transport.polling_interval == interval
        with conn.Consumer(queue, callbacks=[lambda body, message: (got.append(body), message.ack())]):
            # published from another connection while this one waits on an empty queue
            def publish() -> None:
                with Connection(url, transport_options={"polling_interval": interval}) as other:
                    other.Producer().publish(
                        {"upload_id": "a"}, exchange=queue.exchange, routing_key="jobs", declare=[queue]
                    )

            sender = threading.Timer(0.1, publish)
            sender.start()
            conn.drain_events(timeout=10)
            sender.join()
        # the option reached the transport and not create_engine (which would refuse it), and stays
        assert conn.transport_options == {"polling_interval": interval}
    assert got == [{"upload_id": "a"}]
    assert (tmp_path / "broker.db.bell").exists()


def test_bell_beside_sqlite_only(tmp_path: Path) -> None:
    assert broker.bell_path(f"sqlite:///{tmp_path}/b.db") == tmp_path / "b.db.bell"
    assert broker.bell_path("sqlite:///:memory:") is None
    assert broker.bell_path("postgresql://localhost/test") is None
    broker.ring(tmp_path / "missing" / "b.db.bell")  # no folder: nothing rings, nothing fails


def test_poll_interval_is_a_checked_setting(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).broker_poll_interval == 1.0
    with pytest.raises(ValueError, match="broker_poll_interval"):
        Settings(data_dir=tmp_path, broker_poll_interval=0)
