#!/usr/bin/env bash
# Set up, start the embedded service (API + worker, no other server), send it the bundled two-speaker
# sample and print the diarized transcript. The service keeps running at http://127.0.0.1:${PORT:-8000}
# until Ctrl-C (KEEP_SERVING=0 stops it after the transcript).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
PORT=${PORT:-8000}
BASE="http://127.0.0.1:$PORT"
.venv/bin/proxyai serve --port "$PORT" > data-serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
.venv/bin/python - "$BASE" <<'PY'
import sys, time, pathlib, httpx
base = sys.argv[1]
for _ in range(240):
    try:
        if httpx.get(f"{base}/health", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.5)
else:
    sys.exit("the service did not start: see data-serve.log")
key = pathlib.Path("data/local-api-key").read_text().strip()
h = {"X-API-Key": key}
with open("samples/dialogue_2spk.wav", "rb") as fh:
    upload_id = httpx.post(f"{base}/upload/", files={"file": fh}, headers=h, timeout=60).json()["upload_id"]
while (s := httpx.get(f"{base}/status/{upload_id}", headers=h).json())["status"] not in ("done", "failed"):
    print(f"\r{s['stage']:<14} {s['progress']:3d}%", end="", file=sys.stderr, flush=True)
    time.sleep(1)
print("\r" + " " * 24 + "\r", end="", file=sys.stderr)
if s["status"] == "failed":
    sys.exit(f"the job failed: {s['error']}")
print(httpx.get(f"{base}/results/{upload_id}?format=txt", headers=h).text)
print(f"proxyAI is serving at {base} (API docs at {base}/docs); your API key is in data/local-api-key.",
      file=sys.stderr)
PY
if [ "${KEEP_SERVING:-1}" = "1" ]; then
  echo "Ctrl-C stops it." >&2
  wait $SERVER
fi
