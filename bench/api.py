"""The API under a bounded load on loopback, against the embedded server (``proxyai serve``).

* GET /results/{id} latency (p50, p99) at a fixed request rate (default 200 requests/s for 10 s);
* the API process's RSS growth while a 1 GiB upload streams in;
* the wait before a job is picked up (the result's ``timings.queue``) and upload → result, over a few
  uploads of the sample one after another (the embedded broker polls every ``BROKER_POLL_INTERVAL``).

Usage: ``python bench/api.py [--rate 200] [--seconds 10] [--upload-gib 1] [--jobs 5]``. Everything stays on
127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "samples" / "dialogue_2spk.wav"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL"))}
    env.update(
        DATA_DIR=str(folder / "data"),
        MAX_FILE_SIZE="4GiB",
        RATE_LIMIT_RESULTS="1000000/minute",
        RATE_LIMIT_UPLOAD="1000/minute",
        LOG_LEVEL="WARNING",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "proxyai.cli", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_ready(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not start")


async def load(base: str, path: str, headers: dict[str, str], rate: float, seconds: float) -> list[float]:
    """Send ``rate × seconds`` GETs at a fixed rate (open loop); return each latency in seconds."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=10) as client:

        async def one() -> None:
            nonlocal errors
            t0 = time.perf_counter()
            r = await client.get(path)
            if r.status_code != 200:
                errors += 1
            latencies.append(time.perf_counter() - t0)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    if errors:
        print(f"# {errors} requests failed", file=sys.stderr)
    return latencies


def big_body(size: int, boundary: str) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    block = os.urandom(1 << 20)
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


def one_job(base: str, headers: dict[str, str]) -> tuple[str, dict[str, float]]:
    """Upload the sample, wait for its result; its id and timings."""
    with open(SAMPLE, "rb") as fh:
        upload_id = httpx.post(f"{base}/upload/", files={"file": fh}, headers=headers, timeout=60).json()["upload_id"]
    while httpx.get(f"{base}/status/{upload_id}", headers=headers).json()["status"] not in ("done", "failed"):
        time.sleep(0.05)
    return upload_id, dict(httpx.get(f"{base}/results/{upload_id}", headers=headers).json()["timings"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--upload-gib", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=5, help="sequential uploads timed for the pick-up wait")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(folder, port)
        try:
            wait_ready(base)
            key = (folder / "data" / "local-api-key").read_text().strip()
            headers = {"X-API-Key": key}
            upload_id, _ = one_job(base, headers)  # the models' first job; its result is what the load reads
            queue_s, total_s = [], []
            for _ in range(args.jobs):
                _, timings = one_job(base, headers)
                queue_s.append(timings["queue"])
                total_s.append(timings["total"])
            latencies = asyncio.run(load(base, f"/results/{upload_id}", headers, args.rate, args.seconds))
            latencies.sort()
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000

            size = int(args.upload_gib * (1 << 30))
            before = rss_mb(server.pid)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], rss_mb(server.pid))
                    time.sleep(0.05)

            threading.Thread(target=sample, daemon=True).start()
            boundary = "proxyaibenchboundary"
            t0 = time.perf_counter()
            r = httpx.post(
                f"{base}/upload/",
                content=big_body(size, boundary),
                headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=600,
            )
            upload_s = time.perf_counter() - t0
            done.set()
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
    print(
        f"\nGET /results: {len(latencies)} requests at {args.rate:.0f}/s over {args.seconds:.0f} s; "
        f"upload: {args.upload_gib:g} GiB of random bytes (answered {r.status_code}: not audio)\n"
    )
    print("| measure | value | target |")
    print("|---|---:|---:|")
    print(f"| GET /results p50 | {p50:.1f} ms | — |")
    print(f"| GET /results p99 | {p99:.1f} ms | ≤ 50 ms |")
    print(f"| API RSS before the upload | {before:.0f} MB | — |")
    print(f"| API RSS growth during a {args.upload_gib:g} GiB upload | {peak[0] - before:.0f} MB | ≤ 50 MB |")
    print(f"| upload throughput | {size / upload_s / 1e6:.0f} MB/s | — |")
    if queue_s:
        queue_s.sort()
        total_s.sort()
        print(
            f"| wait before pick-up, median / most of {len(queue_s)} | {queue_s[len(queue_s) // 2] * 1000:.0f} / "
            f"{queue_s[-1] * 1000:.0f} ms | ≤ 50 ms |"
        )
        print(f"| upload → result ({SAMPLE.name}), median | {total_s[len(total_s) // 2]:.2f} s | — |")


if __name__ == "__main__":
    main()
