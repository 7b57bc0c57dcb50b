#!/usr/bin/env bash
# The Docker deployment end to end on this machine (not part of scripts/test.sh; needs root):
#   1. installs docker.io, docker-compose and debootstrap with apt-get when they are missing, and starts
#      dockerd when none answers (stopped again at the end if this script started it);
#   2. makes the base image proxyai-base:bookworm when it is missing (debootstrap --variant=minbase from the
#      Debian mirror apt uses, then docker import): no image registry is needed;
#   3. builds the CPU image (Dockerfile) on that base with the package indexes this machine's pip uses
#      (`pip config list`: index, extra indexes, find-links), served to the build on loopback by
#      scripts/pip_index_proxy.py (remote ones fetched with this machine's certificates, local folders
#      from the disk), so the image's own pip resolves for its own Python;
#   4. brings up api + cpu-worker + gpu-worker (on the CPU) + beat + redis + postgres from compose.cpu.yml
#      with deploy/compose.hostnet.yml (host networking, loopback ports of their own; Redis and
#      PostgreSQL from Debian's packages on the same base), .env.example as the containers' settings;
#   5. creates a user in the api container, sends a two-speaker recording through the API, checks the
#      diarized result (2 speakers, text) and the GPU worker's own metrics endpoint, then `down -v`;
#   6. transcribes the recording with the image alone under --network none (the models are in it), and
#      prints the image size, the build time and the time to the first result.
# Work files (root file system, logs, the result) go to PROXYAI_E2E_DIR (/var/tmp/proxyai-docker-e2e);
# PROXYAI_E2E_NO_CACHE=1 builds the image from scratch (the build time of a first build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${PROXYAI_E2E_DIR:-/var/tmp/proxyai-docker-e2e}
BASE=proxyai-base:bookworm
IMAGE=${PROXYAI_E2E_IMAGE:-proxyai:e2e}
PROJECT=proxyai-e2e
export E2E_API_PORT=${E2E_API_PORT:-18000} E2E_REDIS_PORT=${E2E_REDIS_PORT:-16379}
export E2E_POSTGRES_PORT=${E2E_POSTGRES_PORT:-15432} E2E_CPU_WORKER_METRICS_PORT=19101 E2E_GPU_WORKER_METRICS_PORT=19102
export PROXYAI_IMAGE=$IMAGE PROXYAI_ENV_FILE=$ROOT/.env.example POSTGRES_PASSWORD=e2e-$$
AUDIO=${PROXYAI_E2E_AUDIO:-}
for candidate in ../shared/audio/dialogue_2spk.wav samples/dialogue_2spk.wav; do
  [ -n "$AUDIO" ] || { [ -f "$candidate" ] && AUDIO=$candidate; }
done
mkdir -p "$WORK"
log() { printf '[docker-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
[ "$(id -u)" = 0 ] || { echo "docker-e2e: run as root (apt-get, dockerd)" >&2; exit 2; }
[ -n "$AUDIO" ] && AUDIO=$(realpath "$AUDIO")
[ -n "$AUDIO" ] || { echo "docker-e2e: no recording (../shared/audio/dialogue_2spk.wav or samples/)" >&2; exit 2; }

# 1. tools and daemon
missing=()
{ command -v docker >/dev/null && command -v dockerd >/dev/null; } || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# the Compose client: PROXYAI_E2E_COMPOSE (a command line), else docker-compose, else the docker compose plugin
if [ -n "${PROXYAI_E2E_COMPOSE:-}" ]; then read -r -a CLIENT <<<"$PROXYAI_E2E_COMPOSE"
elif command -v docker-compose >/dev/null; then CLIENT=(docker-compose)
else CLIENT=(docker compose); fi
COMPOSE=("${CLIENT[@]}" -p "$PROJECT" --project-directory "$ROOT" -f "$WORK/compose.e2e.yml")
DOCKERD_PID=
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $WORK/dockerd.log)"
  dockerd >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log" >&2; exit 1; }
fi
SERVER_PID=
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -n "${UP:-}" ]; then
    log "failed: the services' last lines"
    "${COMPOSE[@]}" ps >&2 || true
    "${COMPOSE[@]}" logs --tail 40 >&2 || true
  fi
  if [ -n "${UP:-}" ]; then "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$DOCKERD_PID" ] && [ -z "${KEEP_DOCKERD:-}" ]; then kill "$DOCKERD_PID" 2>/dev/null; wait "$DOCKERD_PID" 2>/dev/null || true; fi
  exit $rc
}
trap cleanup EXIT

# 2. the base image
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  mirror=$(python3 - <<'EOF'
import glob, re
uris = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
        if "bookworm" in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
            uris += fields.get("URIs", "").split()
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
        if m:
            uris.append(m.group(1))
print(uris[0] if uris else "http://deb.debian.org/debian")
EOF
)
  log "debootstrap --variant=minbase bookworm from $mirror"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

# 3. the images, with the packages of this machine's pip indexes (served on loopback)
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
# pip's own view of its index, extra indexes and find-links (its configuration files and PIP_* variables)
"$PY" - >"$WORK/pip-locations.txt" <<'EOF'
import re, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
rank = {"global": 0, "user": 1, "site": 2, ":env:": 3}
found = {}
for line in out.splitlines():
    m = re.match(r"^([^.]+)\.([\w-]+)='(.*)'$", line)
    if m and m.group(2) in ("index-url", "extra-index-url", "find-links"):
        r = rank.get(m.group(1), 0)
        if r >= found.get(m.group(2), (-1, ""))[0]:
            found[m.group(2)] = (r, m.group(3))
def get(key):
    return found.get(key, (0, ""))[1].split()
print("index", *(get("index-url") or ["https://pypi.org/simple"]))
print("extra", *get("extra-index-url"))
print("links", *get("find-links"))
EOF
read -r -a INDEX <<<"$(sed -n 's/^index //p' "$WORK/pip-locations.txt")"
read -r -a EXTRA <<<"$(sed -n 's/^extra *//p' "$WORK/pip-locations.txt")"
read -r -a LINKS <<<"$(sed -n 's/^links *//p' "$WORK/pip-locations.txt")"
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$PY" scripts/pip_index_proxy.py "$PORT" "${INDEX[0]}" ${EXTRA[@]+"${EXTRA[@]}"} ${LINKS[@]+"${LINKS[@]}"} \
  >"$WORK/pip-urls.txt" 2>"$WORK/pip-proxy.log" &
SERVER_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
mapfile -t URLS <"$WORK/pip-urls.txt"
n_extra=${#EXTRA[@]}
INDEX_URL=${URLS[0]}
EXTRA_URLS="${URLS[*]:1:$n_extra}"
LINK_URLS="${URLS[*]:$((1 + n_extra))}"
log "this machine's pip indexes on 127.0.0.1:$PORT: ${INDEX[0]} ${EXTRA[*]:-} ${LINKS[*]:-}"

export DOCKER_BUILDKIT=0  # the classic builder: no buildx plugin here, and nothing to pull
log "docker build $IMAGE (log: $WORK/build.log)"
t_build=$(now)
docker build --network host ${PROXYAI_E2E_NO_CACHE:+--no-cache} -t "$IMAGE" --build-arg "BASE_IMAGE=$BASE" \
  --build-arg "PIP_INDEX_URL=$INDEX_URL" --build-arg "PIP_EXTRA_INDEX_URL=$EXTRA_URLS" \
  --build-arg "PIP_FIND_LINKS=$LINK_URLS" --build-arg "TORCH_INDEX_URL=$INDEX_URL" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; exit 1; }
BUILD_S=$(since "$t_build")
kill "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
log "built in ${BUILD_S} s"
docker build --network host -q -t proxyai-e2e-redis:bookworm - >/dev/null <<EOF
FROM $BASE
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/* \
    && install -d -o redis -g redis /data
USER redis
WORKDIR /data
EOF
docker build --network host -q -t proxyai-e2e-postgres:bookworm - >/dev/null <<'EOF'
FROM proxyai-base:bookworm
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
    && apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
    && printf '%s\n' '#!/bin/sh' 'set -eu' \
      'if [ ! -s "$PGDATA/PG_VERSION" ]; then' \
      '  printf "%s\n" "$POSTGRES_PASSWORD" > /tmp/pw' \
      '  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pw --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null' \
      '  rm -f /tmp/pw' \
      '  echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" postgres >/dev/null' \
      'fi' \
      'exec postgres -D "$PGDATA" -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp' \
      > /usr/local/bin/e2e-postgres && chmod +x /usr/local/bin/e2e-postgres
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
ENTRYPOINT ["/usr/local/bin/e2e-postgres"]
EOF
SIZE=$(docker image inspect -f '{{.Size}}' "$IMAGE")

# 4. the stack: compose.cpu.yml + deploy/compose.hostnet.yml as the client merges them, less the published
# ports (which mean nothing on the host's network, and which docker-compose 1.29 refuses there; an
# override cannot take them away)
"${CLIENT[@]}" -p "$PROJECT" -f compose.cpu.yml -f deploy/compose.hostnet.yml config >"$WORK/compose.merged.yml"
"$PY" - "$WORK/compose.merged.yml" "$WORK/compose.e2e.yml" <<'EOF'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
for service in config["services"].values():
    if service.get("network_mode") == "host":
        service.pop("ports", None)
yaml.safe_dump(config, open(sys.argv[2], "w"), sort_keys=False)
EOF
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
log "up: api cpu-worker gpu-worker beat (redis, postgres) with ${CLIENT[*]}, compose.cpu.yml + deploy/compose.hostnet.yml"
t_up=$(now)
UP=1
"${COMPOSE[@]}" up -d --no-build api cpu-worker gpu-worker beat
API=http://127.0.0.1:$E2E_API_PORT
healthy() { [ "$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$("${COMPOSE[@]}" ps -q "$1")")" = healthy ]; }
for _ in $(seq 300); do
  healthy api && healthy cpu-worker && healthy gpu-worker && healthy beat && break
  sleep 2
done
for s in api cpu-worker gpu-worker beat redis postgres; do
  healthy "$s" || { log "$s is not healthy"; exit 1; }
done
HEALTHY_S=$(since "$t_up")
log "every service healthy after ${HEALTHY_S} s"

# 5. a job through the API
KEY=$("${COMPOSE[@]}" exec -T api proxyai admin create-user e2e 2>/dev/null | sed -n 's/^api key: //p' | tr -d '\r')
[ -n "$KEY" ] || { log "no API key from proxyai admin create-user"; exit 1; }
t_job=$(now)
ID=$(curl -sSf -H "X-API-Key: $KEY" -F "file=@$AUDIO" "$API/upload/" | python3 -c "import json, sys; print(json.load(sys.stdin)['upload_id'])")
log "uploaded $AUDIO as $ID"
status=
for _ in $(seq 600); do
  status=$(curl -sSf -H "X-API-Key: $KEY" "$API/status/$ID" | python3 -c "import json, sys; print(json.load(sys.stdin)['status'])")
  [ "$status" = done ] || [ "$status" = failed ] && break
  sleep 1
done
JOB_S=$(since "$t_job")
FIRST_S=$(since "$t_up")
[ "$status" = done ] || { log "the job ended $status"; curl -sS -H "X-API-Key: $KEY" "$API/results/$ID" >&2; exit 1; }
curl -sSf -H "X-API-Key: $KEY" "$API/results/$ID" >"$WORK/result.json"
python3 - "$WORK/result.json" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
speakers = {s["speaker"] for s in result["transcript"]}
words = sum(len(s["text"].split()) for s in result["transcript"])
print(f"result: {len(speakers)} speakers, {len(result['transcript'])} segments, {words} words; "
      f"first: {result['transcript'][0]['speaker']}: {result['transcript'][0]['text'].strip()}")
assert len(speakers) == 2 and len(result["speakers"]) == 2, f"expected 2 speakers, got {sorted(speakers)}"
assert words >= 20, "expected text"
EOF
if curl -sf "http://127.0.0.1:$E2E_GPU_WORKER_METRICS_PORT/metrics" | grep -q '^whisper_transcription_seconds_count'; then
  log "gpu-worker's own metrics endpoint reports whisper_transcription_seconds"
else
  log "gpu-worker's metrics endpoint (WORKER_METRICS_PORT) did not answer with whisper_transcription_seconds"
fi

# 6. down, figures
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null
UP=

# the image alone, with no network at all: the bundled models are in it
log "offline: docker run --network none $IMAGE transcribe"
docker run --rm --network none -v "$(dirname "$AUDIO")":/audio:ro "$IMAGE" \
  transcribe --quiet "/audio/$(basename "$AUDIO")" >"$WORK/offline.txt"
grep -q "SPEAKER_01" "$WORK/offline.txt" || { log "offline transcription failed"; cat "$WORK/offline.txt" >&2; exit 1; }
log "offline: $(head -1 "$WORK/offline.txt")"

python3 - "$IMAGE" "$SIZE" "$BUILD_S" "$HEALTHY_S" "$JOB_S" "$FIRST_S" <<'EOF'
import sys
image, size, build, healthy, job, first = sys.argv[1:]
print(f"docker-e2e passed: image {image} {int(size) / 1e6:.0f} MB, built in {build} s; every service healthy "
      f"{healthy} s after up; the job {job} s from upload to done; first result {first} s after up")
EOF
