#!/usr/bin/env bash
# Installs what the project needs and is missing; quick when nothing is.
#   - Debian packages: PostgreSQL with PostGIS, GDAL's command-line tools, Python venv support
#   - .venv with the project and its dev tools (reinstalled when pyproject.toml changes)
#   - the map portal: npm ci from portal/package-lock.json and its build into portal/dist
#     (redone only when the lockfile or the portal's sources change)
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
# Node and npm build the portal; Chromium runs its end-to-end tests (no browser download).
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
# Fonts with Urdu (Noto Nastaliq/Naskh) and Chinese glyphs, so the browser's screenshots
# show the translated portal rather than empty boxes.
for pkg in fonts-noto-core fonts-wqy-microhei; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
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

# The portal: dependencies exactly as locked, then the build, each redone only when its
# inputs change (stamps hold the hash of what they were made from).
lock_hash=$(sha256sum portal/package-lock.json | cut -c1-64)
if [ "$(cat portal/node_modules/.cadastre-stamp 2>/dev/null || true)" != "$lock_hash" ]; then
    echo "setup: installing the portal's npm packages (npm ci)"
    (cd portal && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > portal/node_modules/.cadastre-stamp
fi
build_hash=$(cat portal/package-lock.json portal/build.mjs $(find portal/src -type f | sort) \
    | sha256sum | cut -c1-64)
if [ "$(cat portal/dist/.cadastre-stamp 2>/dev/null || true)" != "$build_hash" ]; then
    echo "setup: building the portal"
    (cd portal && node build.mjs)
    echo "$build_hash" > portal/dist/.cadastre-stamp
fi
