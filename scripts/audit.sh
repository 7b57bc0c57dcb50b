#!/usr/bin/env bash
# Audit the installed environment (.venv, from scripts/setup.sh) for dependencies with known
# vulnerabilities, with pip-audit against PyPI's vulnerability data; our own editable package is skipped.
# Exit 0: every distribution audited, none vulnerable. 1: known vulnerabilities (listed). 2: UNAUDITED,
# the audit could not be done in full (the service unreachable, or distributions it had no data for):
# never a pass. pip-audit itself reports "No known vulnerabilities found" and exits 0 when every lookup
# came back 404 (a mirror without the vulnerability API), so its verdict is not trusted alone: a
# known-vulnerable canary (requests 2.19.0, CVE-2018-18074) must be flagged, and nothing may be skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-audit ] || { echo "UNAUDITED: .venv/bin/pip-audit is missing (run scripts/setup.sh)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
audit() {  # audit OUT.json ARGS...: pip-audit's JSON report in OUT.json, its messages in OUT.json.log
  local out=$1
  shift
  .venv/bin/pip-audit --progress-spinner off --desc off --aliases off -f json -o "$out" "$@" >"$out.log" 2>&1
}
printf 'requests==2.19.0\n' >"$WORK/canary.txt"
audit "$WORK/canary.json" --no-deps --disable-pip -r "$WORK/canary.txt"
audit "$WORK/env.json" --local --skip-editable
.venv/bin/python - "$WORK" <<'EOF'
import json
import re
import subprocess
import sys
from pathlib import Path

work = Path(sys.argv[1])
OWN = {"proxyai"}


def report(name: str) -> dict | None:
    try:
        return json.loads((work / name).read_text())
    except (OSError, ValueError):
        return None


def why(name: str) -> str:
    lines = [line for line in (work / f"{name}.log").read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no report written"


def unaudited(reason: str) -> None:
    print(f"UNAUDITED: {reason}")
    print("The dependencies were NOT audited: run scripts/audit.sh where https://pypi.org/pypi/<name>/<version>/json is reachable.")
    sys.exit(2)


canary = report("canary.json")
if canary is None:
    unaudited(f"pip-audit could not query the vulnerability service ({why('canary.json')})")
if not any(d.get("vulns") for d in canary.get("dependencies", [])):
    skipped = [d.get("skip_reason", "") for d in canary.get("dependencies", [])]
    unaudited(
        "the vulnerability service reports nothing for requests 2.19.0, a version with a published "
        f"advisory (CVE-2018-18074){': ' + skipped[0] if skipped and skipped[0] else ''}"
    )
env = report("env.json")
if env is None:
    unaudited(f"pip-audit could not audit the environment ({why('env.json')})")
deps = [d for d in env.get("dependencies", []) if d["name"].lower() not in OWN]
if not deps:
    unaudited("pip-audit listed no installed distributions")
vulnerable = [d for d in deps if d.get("vulns")]
skipped = [d for d in deps if "skip_reason" in d]

# A local version label (torch 2.13.0+cpu) is not on PyPI's API: audit the public release it was built from.
local = {}
for d in skipped:
    found = re.search(r"\((\S+)\+[^)]*\)$", d["skip_reason"])
    if found:
        local[d["name"]] = found.group(1)
if local:
    (work / "public.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(local.items())))
    cmd = [".venv/bin/pip-audit", "--progress-spinner", "off", "--desc", "off", "--aliases", "off", "-f", "json"]
    cmd += ["-o", str(work / "public.json"), "--no-deps", "--disable-pip", "-r", str(work / "public.txt")]
    subprocess.run(cmd, capture_output=True, check=False)
    public = report("public.json") or {"dependencies": []}
    for d in public["dependencies"]:
        if "skip_reason" not in d:
            skipped = [s for s in skipped if s["name"] != d["name"]]
            vulnerable += [d] if d.get("vulns") else []

for d in vulnerable:
    for v in d["vulns"]:
        fixes = ", ".join(v.get("fix_versions", [])) or "no fix yet"
        print(f"VULNERABLE: {d['name']} {d.get('version', '')}: {v['id']} (fixed in {fixes})")
audited = len(deps) - len(skipped)
if skipped:
    print(f"UNAUDITED: {len(skipped)} of {len(deps)} distributions could not be audited, e.g.:")
    for d in skipped[:5]:
        print(f"  {d['skip_reason']}")
if vulnerable:
    print(f"FAILED: {len(vulnerable)} vulnerable distributions")
    sys.exit(1)
if skipped:
    print("The dependencies were NOT audited in full: this is not a pass.")
    sys.exit(2)
print(f"audited {audited} distributions: no known vulnerabilities")
EOF
