#!/usr/bin/env bash
# Install medic on this host as a systemd service, in one command (as root):
#
#   sudo bash scripts/install.sh                 # from a checkout of this repo
#   sudo bash scripts/install.sh --dry-run       # extra arguments go to install-unit
#
# 1. a virtualenv at $MEDIC_PREFIX/venv (default /opt/medic/venv)
# 2. pip install of this checkout into it (a rerun upgrades medic in place)
# 3. medic install-unit --enable: /etc/systemd/system/medic.service, the
#    default config and playbooks in /etc/medic (kept when already there),
#    systemctl daemon-reload, systemctl enable --now medic
#
# Offline hosts: PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels bash scripts/install.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${MEDIC_PREFIX:-/opt/medic}"
VENV="$PREFIX/venv"
PYTHON="${PYTHON:-python3}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

preflight() {
    [ "$(id -u)" -eq 0 ] || die "run as root: it writes /etc/systemd/system and /etc/medic"
    command -v systemctl >/dev/null || die "no systemctl: medic's service needs systemd"
    command -v "$PYTHON" >/dev/null || die "no $PYTHON (medic needs Python 3.11 or newer)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$PYTHON" --version 2>&1) is too old: medic needs Python 3.11 or newer"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
        || die "$PYTHON cannot make virtualenvs: install python3-venv (apt-get install python3-venv)"
}

make_venv() {
    if "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "virtualenv $VENV exists"
        return
    fi
    log "creating virtualenv $VENV"
    mkdir -p "$PREFIX"
    "$PYTHON" -m venv "$VENV"
}

install_package() {
    log "installing medic from $REPO_ROOT into $VENV"
    # A local directory is rebuilt and reinstalled each time, so a rerun upgrades.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$REPO_ROOT"
}

main() {
    preflight
    make_venv
    install_package
    log "medic install-unit --enable $*"
    "$VENV/bin/medic" install-unit --enable "$@"
    log "done: systemctl status medic; journalctl -u medic -f; $VENV/bin/medic status"
}

main "$@"
