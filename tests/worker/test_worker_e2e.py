"""End to end on real workers: one process per queue, a real upload, the result through the API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from process_helpers import check_timings, free_port
from worker_helpers import (
    DONE_FILES,
    Api,
    Worker,
    job_files,
    launch_worker,
    make_api,
    make_settings,
    migrate,
    parse_time,
    saved,
)


@dataclass
class Run:
    api: Api
    cpu: Worker
    gpu: Worker
    metrics: dict[str, int]  # each worker's own metrics port
    upload_id: str
    correlation_id: str
    seen: list[dict[str, Any]]
    final: dict[str, Any]
    results_dir: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, redis_db: Any, dialogue_wav: Path) -> Iterator[Run]:
    """Two workers (diarization on preprocess_cpu, recognition on preprocess_gpu), warm; one upload,
    followed to the end."""
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    settings = make_settings(data)
    migrate(settings)
    ports = {"cpu": free_port(), "gpu": free_port()}
    with ExitStack() as stack:
        cpu = launch_worker(data, root / "logs", "preprocess_cpu", "cpu", worker_metrics_port=ports["cpu"])
        stack.callback(cpu.stop)
        gpu = launch_worker(data, root / "logs", "preprocess_gpu", "gpu", worker_metrics_port=ports["gpu"])
        stack.callback(gpu.stop)
        api = make_api(settings)
        for worker in (cpu, gpu):
            worker.wait_ping(api.celery, timeout=60)
        for worker in (cpu, gpu):
            worker.wait_event("models warm", timeout=90)
        upload_id, correlation_id = api.upload(dialogue_wav)
        seen: list[dict[str, Any]] = []
        final = api.wait_finished(upload_id, timeout=120, seen=seen)
        # the last lines (task succeeded) are written just after the job is marked done
        for worker, task in ((cpu, "diarize_full"), (gpu, "transcribe_segments")):
            worker.wait_for(lambda w=worker, t=task: _runs(w, t, upload_id), 20, f"{task} succeeded line")
        yield Run(api, cpu, gpu, ports, upload_id, correlation_id, seen, final, settings.results)


def _runs(worker: Worker, task: str, upload_id: str) -> list[tuple[float, float]]:
    """(start, end) of each finished run of ``task`` for the job in this worker's log, from Celery's
    "Task … succeeded in N s" line (its time minus its runtime)."""
    out = []
    for r in worker.records():
        if r.get("upload_id") != upload_id or r.get("task") != f"proxyai.{task}":
            continue
        m = re.search(r"succeeded in ([0-9.]+)s", r.get("event", ""))
        if m:
            end = parse_time(r["timestamp"])
            out.append((end - float(m.group(1)), end))
    return out


def test_job_runs_end_to_end_on_two_workers(run: Run) -> None:
    api, uid = run.api, run.upload_id
    assert run.final["status"] == "done", run.final
    assert run.final["progress"] == 100 and run.final["error"] is None

    # intermediate states were visible while the job ran: processing, with the stage it was in
    assert run.seen[0]["status"] in ("queued", "processing"), run.seen[0]
    stages = {s["stage"] for s in run.seen if s["status"] == "processing"}
    assert stages & {"diarizing", "transcribing", "merging"}, run.seen
    assert all(0 <= s["progress"] <= 100 for s in run.seen)
    progress = [s["progress"] for s in run.seen]
    assert progress == sorted(progress), progress

    # the result: two speakers, the words
    response = api.client.get(f"/results/{uid}", headers=api.headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "done"
    speakers = [s["id"] for s in result["speakers"]]
    assert len(speakers) == 2, result["speakers"]
    text = " ".join(seg["text"] for seg in result["segments"]).lower()
    assert "child" in text, text
    assert {seg["speaker"] for seg in result["segments"]} <= set(speakers)
    check_timings(result["timings"])

    # exactly one result file
    assert job_files(run.results_dir / uid) == DONE_FILES

    # a name for a speaker, used by the JSON and by the subtitles
    first = result["segments"][0]["speaker"]
    response = api.client.post(f"/labels/{uid}", json={first: "Alice"}, headers=api.headers)
    assert response.status_code == 200, response.text
    assert response.json()["labels"] == {first: "Alice"}
    srt = api.client.get(f"/results/{uid}", params={"format": "srt"}, headers=api.headers)
    assert srt.status_code == 200, srt.text
    assert "Alice" in srt.text and "-->" in srt.text
    assert first not in srt.text
    named = api.client.get(f"/results/{uid}", headers=api.headers).json()
    labels = {s["id"]: s["label"] for s in named["speakers"]}
    assert labels[first] == "Alice"
    assert [s for s in labels if labels[s] == "Alice"] == [first]


def test_each_worker_serves_the_metrics_of_its_pool(run: Run) -> None:
    """``WORKER_METRICS_PORT``: each worker (a prefork pool: the task ran in a child process) serves the
    stage seconds and task runs of its own job parts, so they are visible however many machines run workers."""

    def scrape(label: str) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{run.metrics[label]}/metrics", timeout=10).text
        return {
            m.group(1): float(m.group(2)) for m in re.finditer(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", text, re.M)
        }

    cpu, gpu = scrape("cpu"), scrape("gpu")
    assert cpu["diarization_seconds_count"] == 1.0 and cpu["diarization_seconds_sum"] > 0
    assert cpu["vad_segmentation_seconds_count"] == 1.0  # the preparation ran on the CPU queue
    assert cpu['celery_task_runs_total{outcome="success",task="proxyai.diarize_full"}'] == 1.0
    assert "whisper_transcription_seconds_count" not in cpu or cpu["whisper_transcription_seconds_count"] == 0
    assert gpu["whisper_transcription_seconds_count"] == 1.0 and gpu["whisper_transcription_seconds_sum"] > 0
    assert gpu['celery_task_runs_total{outcome="success",task="proxyai.transcribe_segments"}'] == 1.0


def test_parts_ran_in_their_own_worker_processes_in_parallel(run: Run) -> None:
    uid, cid = run.upload_id, run.correlation_id
    cpu_runs = _runs(run.cpu, "diarize_full", uid)
    gpu_runs = _runs(run.gpu, "transcribe_segments", uid)
    assert len(cpu_runs) == 1, run.cpu.tail()
    assert len(gpu_runs) == 1, run.gpu.tail()
    # each part only where its queue is served
    assert not _runs(run.cpu, "transcribe_segments", uid)
    assert not _runs(run.gpu, "diarize_full", uid)
    assert run.cpu.proc.pid != run.gpu.proc.pid
    # the recording was decoded and its speech mapped once, on the CPU queue, before both parts
    (prepared,) = _runs(run.cpu, "prepare_job", uid)
    assert not _runs(run.gpu, "prepare_job", uid)
    assert prepared[0] < min(cpu_runs[0][0], gpu_runs[0][0])

    # every line either task wrote about the job carries the job's ids
    for worker in (run.cpu, run.gpu):
        lines = [r for r in worker.records() if r.get("upload_id") == uid]
        assert lines, worker.tail()
        assert all(r.get("correlation_id") == cid for r in lines), lines
    assert saved(run.cpu, "diarization", upload_id=uid, correlation_id=cid)
    assert saved(run.gpu, "asr", upload_id=uid, correlation_id=cid)

    # the merge ran once, in whichever process finished second
    done = run.cpu.events("job done", upload_id=uid) + run.gpu.events("job done", upload_id=uid)
    assert len(done) == 1, done
    assert done[0]["correlation_id"] == cid

    # in parallel: each part started before the other one finished
    (d_start, d_end), (t_start, t_end) = cpu_runs[0], gpu_runs[0]
    assert d_start < t_end and t_start < d_end, (
        f"diarization ran {d_start:.2f}–{d_end:.2f}, recognition {t_start:.2f}–{t_end:.2f}: not overlapping"
    )
    # and both were received before the merge
    merged = parse_time(done[0]["timestamp"])
    for worker, task in ((run.cpu, "diarize_full"), (run.gpu, "transcribe_segments")):
        received = worker.received(task)
        assert received and received[0] <= merged, worker.tail()


def test_workers_log_models_warm_before_their_first_task(run: Run) -> None:
    for worker, queue in ((run.cpu, "preprocess_cpu"), (run.gpu, "preprocess_gpu")):
        warm = worker.events("models warm")
        assert len(warm) == 1, worker.tail()  # concurrency 1: one pool process, warmed once
        assert warm[0]["queues"] == [queue]
        warm_at = parse_time(warm[0]["timestamp"])
        task_lines = [r for r in worker.records() if r.get("task_id")]
        assert task_lines, worker.tail()
        assert warm_at <= min(parse_time(r["timestamp"]) for r in task_lines)


def test_every_task_log_line_is_json_with_the_job_ids(run: Run) -> None:
    """Every log line a worker writes about the job (the main process's included) is a JSON line with
    the job's upload_id and correlation_id, so that one query finds the whole job."""
    uid, cid = run.upload_id, run.correlation_id
    for worker in (run.cpu, run.gpu):
        task_ids = {r["task_id"] for r in worker.records() if r.get("upload_id") == uid and r.get("task_id")}
        assert task_ids, worker.tail()
        about_job = [line for line in worker.lines() if uid in line or any(t in line for t in task_ids)]
        bad = []
        for line in about_job:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad.append(line)
                continue
            if record.get("upload_id") != uid or record.get("correlation_id") != cid:
                bad.append(line)
        assert not bad, f"{worker.name}: log lines about job {uid} that are not JSON with its ids:\n" + "\n".join(bad)
