#!/usr/bin/env bash
# Runs the service with the sample data on http://127.0.0.1:8000 (docs at /docs).
# Uses CADASTRE_DATABASE_URL when set, else the project's own PostGIS in .cadastre/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${CADASTRE_DATABASE_URL:-}" ]; then
    .venv/bin/cadastre db start
fi
.venv/bin/cadastre db upgrade
.venv/bin/cadastre load-sample --if-empty
.venv/bin/cadastre users first-admin  # once: its password goes to .cadastre/first-admin-password
exec .venv/bin/cadastre serve "$@"
