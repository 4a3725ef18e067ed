#!/usr/bin/env bash
# Install medic into ./.venv and run it on the default config, in the foreground.
#   ./scripts/run.sh [extra `medic run` arguments, e.g. --log-format json]
# Works on a fresh Debian 12 / Ubuntu 24.04: installs python3-venv if it is
# missing (as root, or through sudo), never touches the system's Python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "medic: installing python3-venv" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "medic needs Python 3.11 or newer (found $(python3 --version))" >&2; exit 1; }

if [ ! -x .venv/bin/medic ] || [ pyproject.toml -nt .venv/.medic-installed ]; then
    echo "medic: installing into $(pwd)/.venv" >&2
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e .
    touch .venv/.medic-installed
fi

.venv/bin/medic validate --config control-plane/config.yaml
echo "medic: status page and API on http://127.0.0.1:8321/ (Ctrl-C stops)" >&2
exec .venv/bin/medic run --config control-plane/config.yaml "$@"
