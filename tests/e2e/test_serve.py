"""``proxyai serve``, the embedded default, end to end: a real server process with its worker, no Redis,
no other server; upload → status → results → labels → formats, metrics, and the size limit enforced
while the body streams in."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from process_helpers import check_timings, processes_with, wait_for
from serve_helper import json_lines, serve, start

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
    for private in (key_file, folder / "data" / "proxyai.db", folder / "data" / "broker.db"):
        assert oct(private.stat().st_mode & 0o777) == "0o600", private
    # the key is shown once, when it is created (stderr), and never on stdout
    key = key_file.read_text().strip()
    assert (folder / "serve.log").read_text().count(key) == 1
    assert key not in (folder / "serve.out").read_text()


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
    check_timings(result["timings"])
    assert "child" in " ".join(s["text"] for s in result["transcript"]).lower()

    r = httpx.post(f"{base}/labels/{upload_id}", json={"SPEAKER_01": "Oleg"}, headers=headers)
    assert r.status_code == 200 and r.json()["labels"] == {"SPEAKER_01": "Oleg"}
    srt = httpx.get(f"{base}/results/{upload_id}?format=srt", headers=headers)
    assert srt.status_code == 200 and "Oleg:" in srt.text and "SPEAKER_00:" in srt.text
    assert 'filename="dialogue.srt"' in srt.headers["content-disposition"]

    # the worker's log lines of this job carry its upload id and the request's correlation id
    lines = json_lines(folder)
    task_lines = [x for x in lines if x.get("task") and x.get("upload_id") == upload_id]
    assert {x["task"] for x in task_lines} >= {
        "proxyai.prepare_job",
        "proxyai.diarize_full",
        "proxyai.transcribe_segments",
    }
    assert all(x.get("correlation_id") == "serve-e2e-1" for x in task_lines)

    assert (folder / "data" / "broker.db").exists()  # the queue is in SQLite too

    metrics = httpx.get(f"{base}/metrics").text
    assert 'proxyai_jobs{status="done"} 1.0' in metrics
    assert "whisper_transcription_seconds_count" in metrics  # observed in the worker process
    # one job (the first of this server): decoded and scanned for speech once, not once per part
    assert re.search(r"^vad_segmentation_seconds_count 1\.0$", metrics, re.M), metrics
    assert 'celery_task_runs_total{outcome="success",task="proxyai.transcribe_segments"}' in metrics


def test_concurrent_jobs_write_only_whole_json_lines(server: tuple[str, str, Path], shared_audio: Path) -> None:
    """Five jobs at once: the API's and the worker's threads all log at the same time, and every line on
    the service's stdout is still exactly one JSON object (Celery's banner goes to stderr)."""
    import concurrent.futures

    base, key, folder = server
    headers = {"X-API-Key": key}
    audio = (shared_audio / "jfk.flac").read_bytes()

    def one(n: int) -> str:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            r = client.post("/upload/", files={"file": (f"jfk{n}.flac", audio, "audio/flac")})
            assert r.status_code == 200, r.text
            upload_id = str(r.json()["upload_id"])
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                status = client.get(f"/status/{upload_id}").json()["status"]
                if status in ("done", "failed"):
                    return str(status)
                time.sleep(0.3)
            return "timed out"

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        assert list(pool.map(one, range(5))) == ["done"] * 5
    records = json_lines(folder)
    assert len([r for r in records if r.get("event") == "job done"]) >= 5


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


IDLE_TARGET_MIB = 600  # issue 13: every process of an idle serve, with its models loaded


def _memory_mib(marker: str) -> dict[str, int]:
    """Resident (RSS) and proportional (PSS: shared pages divided among their sharers) memory of every
    process of the service, summed, in MiB."""
    total = {"Rss": 0, "Pss": 0}
    for pid in processes_with(marker):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                field, _, value = line.partition(":")
                if field in total:
                    total[field] += int(value.split()[0])
    return {field: kb // 1024 for field, kb in total.items()}


def test_an_idle_serve_after_its_jobs_holds_at_most_600_mib(server: tuple[str, str, Path], shared_audio: Path) -> None:
    """After the module's jobs (and a four-speaker meeting), the service with its models loaded holds at
    most 600 MiB in all: the worker imports no torch, and hands the heap's free pages back after each
    task."""
    base, key, folder = server
    headers = {"X-API-Key": key}
    with open(shared_audio / "meeting_4spk.wav", "rb") as fh:
        r = httpx.post(f"{base}/upload/", files={"file": ("meeting.wav", fh)}, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    upload_id = r.json()["upload_id"]

    def finished() -> bool:
        return httpx.get(f"{base}/status/{upload_id}", headers=headers).json()["status"] in ("done", "failed")

    assert wait_for(finished, 240)
    assert httpx.get(f"{base}/status/{upload_id}", headers=headers).json()["status"] == "done"
    time.sleep(2)  # the task's return (and its memory release) follows the job's last write
    marker = f"DATA_DIR={folder / 'data'}"
    memory = _memory_mib(marker)
    print(f"idle serve after its jobs: RSS {memory['Rss']} MiB, PSS {memory['Pss']} MiB")
    assert 0 < memory["Pss"] <= memory["Rss"] <= IDLE_TARGET_MIB, memory
    for pid in processes_with(marker):
        with contextlib.suppress(OSError):
            assert b"/torch/" not in Path(f"/proc/{pid}/maps").read_bytes(), f"process {pid} has torch loaded"


def _workers(marker: str) -> set[int]:
    """The service's worker processes: those with ``worker`` on their command line whose parent is not
    itself one (a worker's own short-lived forks carry its command line until they exec)."""
    found = {}
    for pid in processes_with(marker):
        try:
            if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                stat = Path(f"/proc/{pid}/stat").read_text()
                found[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return {pid for pid, parent in found.items() if parent not in found}


def _replaced(marker: str, old: int) -> bool:
    return len(_workers(marker) - {old}) == 1


def test_crashed_workers_are_restarted_and_leave_nothing_behind(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Three SIGKILLs of the worker: each time one new worker, and the service is its two processes (the
    API and the worker; the clean-up's clock is a thread of the API, no process a crash could orphan)."""
    folder = tmp_path_factory.mktemp("crashes")
    marker = f"DATA_DIR={folder / 'data'}"
    with serve(folder, WARMUP="false") as (base, _, _):
        assert wait_for(lambda: len(_workers(marker)) == 1, 30), processes_with(marker)
        for crash in range(3):
            (old,) = _workers(marker)
            os.kill(old, signal.SIGKILL)
            restarted = wait_for(functools.partial(_replaced, marker, old), 30)
            assert restarted, (folder / "serve.log").read_text()[-2000:]
            two = wait_for(lambda: len(processes_with(marker)) == 2, 10)
            assert two, f"crash {crash}: {processes_with(marker)}"
        assert (folder / "serve.log").read_text().count("restarting it") == 3
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
    assert wait_for(lambda: not processes_with(marker), 30), "processes of the service outlived it"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_to_serve_alone_stops_every_process(
    tmp_path_factory: pytest.TempPathFactory, signum: signal.Signals
) -> None:
    """The signal goes to the serve process only (as systemd's or docker's stop sends it), not to its
    process group: the service must stop its worker itself, within 30 s, and leave no process."""
    folder = tmp_path_factory.mktemp(f"stop-{signum.name}")
    marker = f"DATA_DIR={folder / 'data'}"
    proc, _ = start(folder, WARMUP="false")
    try:
        assert wait_for(lambda: len(_workers(marker)) == 1, 30), processes_with(marker)
        os.kill(proc.pid, signum)
        proc.wait(timeout=30)
        assert wait_for(lambda: not processes_with(marker), 5), "processes outlived the service"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_killed_serve_takes_its_worker_with_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SIGKILL of serve itself (no clean-up can run): the kernel stops the worker (parent-death signal)."""
    folder = tmp_path_factory.mktemp("kill-serve")
    marker = f"DATA_DIR={folder / 'data'}"
    proc, _ = start(folder, WARMUP="false")
    try:
        assert wait_for(lambda: len(_workers(marker)) == 1, 30), processes_with(marker)
        proc.kill()
        proc.wait(timeout=10)
        assert wait_for(lambda: not processes_with(marker), 30), "the worker outlived a killed serve"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_job_whose_worker_is_killed_mid_job_finishes_once(
    tmp_path_factory: pytest.TempPathFactory, shared_audio: Path
) -> None:
    """The embedded broker never hands a delivered message out again: the dead worker's lease expires and
    the clock (a thread of serve) sends the part again; done within two minutes of the kill, once."""
    import wave

    import numpy as np

    from proxyai.pipeline.audio import decode

    folder = tmp_path_factory.mktemp("kill-mid-job")
    marker = f"DATA_DIR={folder / 'data'}"
    names = ("dialogue_2spk.wav", "meeting_4spk.wav", "phone_2spk.wav", "ru_support_call.wav")
    samples = np.concatenate([decode(shared_audio / n).samples for n in names])
    audio = folder / "long.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    with serve(folder) as (base, key, _):
        headers = {"X-API-Key": key}
        with open(audio, "rb") as fh:
            r = httpx.post(f"{base}/upload/", files={"file": ("long.wav", fh, "audio/wav")}, headers=headers)
        assert r.status_code == 200, r.text
        upload_id = r.json()["upload_id"]

        def status() -> dict[str, object]:
            return dict(httpx.get(f"{base}/status/{upload_id}", headers=headers).json())

        assert wait_for(lambda: status()["stage"] == "transcribing", 120), status()
        time.sleep(2)
        assert status()["status"] == "processing"
        (worker,) = _workers(marker)
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: status()["status"] in ("done", "failed"), 150), status()
        assert status()["status"] == "done", status()
        assert time.monotonic() - killed < 120
        result = httpx.get(f"{base}/results/{upload_id}", headers=headers).json()
        assert len(result["speakers"]) >= 2
        done = [r for r in json_lines(folder) if r.get("event") == "job done" and r.get("upload_id") == upload_id]
        assert len(done) == 1, done
