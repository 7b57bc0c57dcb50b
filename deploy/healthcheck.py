"""Health check of a proxyAI container, whatever it runs (the images' HEALTHCHECK; docker-compose.yml).

``python healthcheck.py [api|worker|beat|metrics]``; without an argument the role is read from the
container's ``proxyai`` process (``serve`` counts as ``api``). Exit 0 when healthy, 1 (with one line on
stderr) when not:

* ``api``: ``GET /health`` on ``PORT`` (8000) answers 200 (the database, the broker and the storage);
* ``worker``: this container's Celery worker answers a ping through the broker;
* ``beat``: the broker accepts a connection;
* ``metrics``: the exporter answers on ``METRICS_PORT`` (9100).

Standard library and Celery only, so that it runs in a second or less.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path

ROLES = ("api", "worker", "beat", "metrics")


def detect_role(proc: Path = Path("/proc")) -> str:
    """The command of the lowest-numbered ``proxyai`` process in this container (with ``init: true``
    that is PID 1's own command line: ``docker-init -- proxyai worker …``)."""
    for pid in sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit()):
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg.endswith("proxyai") or arg == "proxyai.cli":
                command = argv[i + 1]
                if command == "serve":
                    return "api"
                if command in ROLES:
                    return command
    raise SystemExit("healthcheck: no proxyai process found; name the role (api, worker, beat, metrics)")


def http_ok(port: str, path: str) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=4) as response:
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")


def broker() -> object:
    from celery import Celery

    url = os.environ.get("CELERY_BROKER_URL")
    if not url:
        raise RuntimeError("CELERY_BROKER_URL is not set")
    return Celery("healthcheck", broker=url)


def check(role: str) -> None:
    if role == "api":
        http_ok(os.environ.get("PORT", "8000"), "/health")
    elif role == "metrics":
        http_ok(os.environ.get("METRICS_PORT", "9100"), "/metrics")
    elif role == "beat":
        with broker().connection_for_write() as conn:  # type: ignore[attr-defined]
            conn.ensure_connection(max_retries=1, timeout=3)
    elif role == "worker":
        suffix = "@" + socket.gethostname()
        replies = broker().control.ping(timeout=3.0) or []  # type: ignore[attr-defined]
        if not any(name.endswith(suffix) for reply in replies for name in reply):
            raise RuntimeError(f"no worker of this container ({suffix}) answered a ping")
    else:
        raise SystemExit(f"healthcheck: unknown role {role!r} (use one of {', '.join(ROLES)})")


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else detect_role()
    try:
        check(role)
    except Exception as exc:
        print(f"healthcheck {role}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
