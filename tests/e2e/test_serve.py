"""``proxyai serve``, the embedded default, end to end: a real server process with its worker, no Redis,
no other server; upload → status → results → labels → formats, metrics, and the size limit enforced
while the body streams in."""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helper import serve

pytestmark = pytest.mark.slow

LIMIT = 2_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    with serve(tmp_path_factory.mktemp("serve"), MAX_FILE_SIZE=str(LIMIT), RATE_LIMIT_RESULTS="600/minute") as running:
        yield running


def test_serve_needs_no_other_server(server: tuple[str, str, Path]) -> None:
    base, _, folder = server
    health = httpx.get(f"{base}/health").json()
    assert health["status"] == "ok"
    assert (folder / "data" / "proxyai.db").exists()  # jobs in SQLite
    key_file = folder / "data" / "local-api-key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_upload_to_results_labels_and_formats(server: tuple[str, str, Path], shared_audio: Path) -> None:
    base, key, folder = server
    headers = {"X-API-Key": key, "X-Correlation-ID": "serve-e2e-1"}
    with open(shared_audio / "dialogue_2spk.wav", "rb") as fh:
        r = httpx.post(
            f"{base}/upload/", files={"file": ("dialogue.wav", fh, "audio/wav")}, headers=headers, timeout=60
        )
    assert r.status_code == 200, r.text
    assert r.headers["X-Correlation-ID"] == "serve-e2e-1"
    upload_id = r.json()["upload_id"]
    seen = set()
    deadline = time.monotonic() + 180
    while True:
        status = httpx.get(f"{base}/status/{upload_id}", headers=headers).json()
        seen.add(status["status"])
        if status["status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        early = httpx.get(f"{base}/results/{upload_id}", headers=headers)
        if status["status"] != "done" and early.status_code != 200:
            assert early.status_code == 202 and early.json()["status"] in ("queued", "processing")
        time.sleep(0.5)
    assert status["status"] == "done", status
    assert status["progress"] == 100 and status["duration"] == pytest.approx(29.2, abs=0.2)

    result = httpx.get(f"{base}/results/{upload_id}", headers=headers).json()
    assert len(result["speakers"]) == 2
    assert "child" in " ".join(s["text"] for s in result["transcript"]).lower()

    r = httpx.post(f"{base}/labels/{upload_id}", json={"SPEAKER_01": "Oleg"}, headers=headers)
    assert r.status_code == 200 and r.json()["labels"] == {"SPEAKER_01": "Oleg"}
    srt = httpx.get(f"{base}/results/{upload_id}?format=srt", headers=headers)
    assert srt.status_code == 200 and "Oleg:" in srt.text and "SPEAKER_00:" in srt.text
    assert 'filename="dialogue.srt"' in srt.headers["content-disposition"]

    # the worker's log lines of this job carry its upload id and the request's correlation id
    lines = [json.loads(x) for x in (folder / "serve.log").read_text().splitlines() if x.startswith("{")]
    task_lines = [x for x in lines if x.get("task") and x.get("upload_id") == upload_id]
    assert {x["task"] for x in task_lines} >= {"proxyai.diarize_full", "proxyai.transcribe_segments"}
    assert all(x.get("correlation_id") == "serve-e2e-1" for x in task_lines)

    assert (folder / "data" / "broker.db").exists()  # the queue is in SQLite too

    metrics = httpx.get(f"{base}/metrics").text
    assert 'proxyai_jobs{status="done"} 1.0' in metrics
    assert "whisper_transcription_seconds_count" in metrics  # observed in the worker process
    assert 'celery_task_runs_total{outcome="success",task="proxyai.transcribe_segments"}' in metrics


def test_declared_oversize_body_is_refused_before_reading(server: tuple[str, str, Path]) -> None:
    base, key, _ = server
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"POST /upload/ HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {50 * LIMIT}\r\n\r\n"
        )
        sock.sendall(head.encode())
        sock.settimeout(10)
        reply = _read_response(sock).decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert '"detail"' in reply


def _read_response(sock: socket.socket, first: bytes = b"") -> bytes:
    """Head and body of one HTTP response with a Content-Length."""
    data = first
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_streamed_body_is_cut_off_at_the_limit(server: tuple[str, str, Path]) -> None:
    """No Content-Length (chunked): the server answers 413 soon after the limit, long before the
    client would have finished, and keeps no file."""
    base, key, folder = server
    host, port = base.removeprefix("http://").split(":")
    total = 40 * LIMIT
    sent = 0
    reply = b""
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"POST /upload/ HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        first = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
        block = os.urandom(64 * 1024)
        try:
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
                if select.select([sock], [], [], 0)[0]:
                    reply = sock.recv(4096)
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        reply = _read_response(sock, reply)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"detail"' in reply
    assert sent < total / 4, f"the client sent {sent} bytes before the answer"
    leftovers = [p for p in (folder / "data" / "uploads").iterdir() if p.stat().st_size > LIMIT]
    assert not leftovers


def _processes_with(marker: str) -> set[int]:
    """Processes whose environment holds ``marker`` (this test's data folder)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _workers(marker: str) -> set[int]:
    """The service's worker processes: those with ``worker`` on their command line whose parent is not
    itself one (a worker's own short-lived forks carry its command line until they exec)."""
    found = {}
    for pid in _processes_with(marker):
        try:
            if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                stat = Path(f"/proc/{pid}/stat").read_text()
                found[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return {pid for pid, parent in found.items() if parent not in found}


def test_a_crashed_worker_is_restarted_and_stopping_leaves_no_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import signal

    folder = tmp_path_factory.mktemp("lifecycle")
    marker = f"DATA_DIR={folder / 'data'}"
    with serve(folder, WARMUP="false") as (base, _, _):
        deadline = time.monotonic() + 30
        while len(_processes_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _workers(marker)
        assert len(workers) == 1, workers
        (old,) = workers
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        new: set[int] = set()
        while not new and time.monotonic() < deadline:
            time.sleep(0.5)
            new = _workers(marker) - {old}
        assert new, (folder / "serve.log").read_text()[-2000:]
        assert "restarting it" in (folder / "serve.log").read_text()
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
    deadline = time.monotonic() + 30
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with(marker), "processes of the service outlived it"
