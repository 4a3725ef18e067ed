#!/usr/bin/env bash
# Install medic into ./.venv and run it on the default config, in the foreground.
#   ./scripts/run.sh [extra `medic run` arguments, e.g. --listen 127.0.0.1:9000]
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

config=control-plane/config.yaml listen=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --config) config="${args[i + 1]:-}" ;;
        --config=*) config="${args[i]#--config=}" ;;
        --listen) listen="${args[i + 1]:-}" ;;
        --listen=*) listen="${args[i]#--listen=}" ;;
    esac
done
.venv/bin/medic validate --config "$config"
# The address the daemon will listen on: the config's api.listen, or --listen.
address=$(.venv/bin/python - "$config" "$listen" <<'PY'
import sys
from medic.config.load import load_config
api = load_config(sys.argv[1], listen=sys.argv[2] or None).model.api
host = "127.0.0.1" if api.host in ("0.0.0.0", "::") else api.host
print(f"[{host}]:{api.port}" if ":" in host else f"{host}:{api.port}")
PY
) || address=
echo "medic: status page and API on http://${address:-127.0.0.1:8321}/ (Ctrl-C stops)" >&2
exec .venv/bin/medic run --config control-plane/config.yaml "$@"
