#!/usr/bin/env bash
# The test command: set up, lint, type-check, then every test (pytest's exit 5, no tests, fails too).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check proxyai tests bench
.venv/bin/ruff format --check proxyai tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
