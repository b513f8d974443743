#!/usr/bin/env bash
# Runs the whole check: lint, format, types and the test suite. The suite starts
# its own throw-away PostGIS in a temporary directory; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff";  .venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
