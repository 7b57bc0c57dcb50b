"""``bench/gpu.sh``, the GPU bench prepared for the day a GPU is lent: no GPU here, so its syntax, its dry
run (environment, model resolution, the bench's arguments) and its refusal without a GPU are what can
be checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu.sh"


def gpu_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, check=False).returncode == 0


def test_a_dry_run_resolves_the_model_and_prints_the_bench_it_would_run() -> None:
    proc = gpu_sh("--dry-run", "base")
    assert proc.returncode == 0, proc.stderr
    assert "would run:" in proc.stderr
    command = proc.stderr.split("would run:", 1)[1]
    for part in ("bench/pipeline.py", "--device cuda", "--compute-type float16", "--model base", "--batch-size 16"):
        assert part in command, command
    assert proc.stdout.strip().endswith("whisper-base")  # the model it resolved to


def test_a_dry_run_refuses_a_model_it_cannot_find(tmp_path: Path) -> None:
    proc = gpu_sh("--dry-run", str(tmp_path / "no-such-model"))
    assert proc.returncode != 0
    assert "--check-model" in proc.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: the bench would run")
def test_without_a_gpu_it_says_so_and_runs_nothing() -> None:
    proc = gpu_sh("base")
    assert proc.returncode == 3
    assert "no GPU" in proc.stderr or "no CUDA device" in proc.stderr
