"""The CI workflow runs the README's test command, with the services it needs, the audit and the images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_the_test_job_runs_the_readme_command_beside_its_services() -> None:
    readme = (ROOT / "README.md").read_text()
    two_commands = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert "scripts/test.sh" in two_commands  # the README's test command
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "scripts/test.sh"
    job = _workflow()["jobs"]["test"]
    assert any(run.strip() == ".ci/run" for run in _runs(job))
    assert {"redis", "postgres", "rabbitmq"} <= set(job["services"])
    ports = {name: service["ports"] for name, service in job["services"].items()}
    assert ports["redis"] == ["6379:6379"] and ports["postgres"] == ["5432:5432"]


def test_the_audit_and_the_images_are_jobs_of_their_own() -> None:
    jobs = _workflow()["jobs"]
    assert any("scripts/audit.sh" in run for run in _runs(jobs["audit"]))
    builds = " ".join(_runs(jobs["images"]))
    assert "-f Dockerfile " in builds and "-f Dockerfile.gpu " in builds
    on = _workflow().get("on") or _workflow().get(True)  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "schedule"} <= set(on)
