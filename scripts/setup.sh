#!/usr/bin/env bash
# Installs what the project needs and is missing; quick when nothing is.
#   - Debian packages: PostgreSQL with PostGIS, GDAL's command-line tools, Python venv support
#   - .venv with the project and its dev tools (reinstalled when pyproject.toml changes)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
# gdal-bin: the tests drive the service with GDAL's OGC API Features client (ogrinfo).
for pkg in postgresql postgresql-postgis gdal-bin; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then need+=(python3-venv); fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Python 3.11 or newer is required (found $(python3 --version))" >&2
    exit 1
fi

stamp_value=$(sha256sum pyproject.toml | cut -c1-64)
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
if [ "$(cat .venv/.installed 2>/dev/null || true)" != "$stamp_value" ]; then
    echo "setup: installing the project into .venv (first time takes a minute or two)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$stamp_value" > .venv/.installed
fi
