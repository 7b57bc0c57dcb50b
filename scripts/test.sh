#!/usr/bin/env bash
# The test command: set up, lint, type-check, then every test (pytest's exit 5, no tests, fails too).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "chromium could not be installed: the browser tests will be skipped" >&2
fi
.venv/bin/ruff check proxyai tests bench
.venv/bin/ruff format --check proxyai tests bench
.venv/bin/mypy
# Coverage of proxyai/ by the test process (the service's subprocesses are not counted): under 80 % fails.
.venv/bin/python -m pytest -q -p no:cacheprovider --cov=proxyai --cov-report=term:skip-covered --cov-fail-under=80 "$@"
