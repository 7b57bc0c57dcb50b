"""The dependency audit (scripts/audit.sh): never a pass for a run that could not audit."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not (REPO_ROOT / ".venv" / "bin" / "pip-audit").exists(), reason="pip-audit is not installed")
def test_an_unreachable_service_is_unaudited_not_a_pass(tmp_path: Path) -> None:
    """Every request to PyPI goes to a proxy that is not there (a fresh pip cache: nothing answered from
    an earlier run): the audit says UNAUDITED and exits 2."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
    env |= {"HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy}
    env["PIP_CACHE_DIR"] = str(tmp_path / "pip-cache")
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "audit.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("UNAUDITED: ")
    assert "no known vulnerabilities" not in done.stdout.lower()


def test_the_audit_is_not_part_of_the_test_command() -> None:
    """The audit needs the network; the test command runs offline. CI runs it as a job of its own."""
    assert "audit" not in (REPO_ROOT / "scripts" / "test.sh").read_text()
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    test, audit = workflow["jobs"]["test"], workflow["jobs"]["audit"]
    assert set(test["services"]) == {"redis", "postgres", "rabbitmq"}
    assert [s["run"] for s in test["steps"] if "run" in s][-1] == ".ci/run"
    runs = [s["run"] for s in audit["steps"] if "run" in s]
    assert runs[-2:] == ["scripts/setup.sh", "scripts/audit.sh"]
