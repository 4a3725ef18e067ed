#!/usr/bin/env bash
# The one command that tests medic: set up the host, then ruff, mypy, pytest.
#
#   sudo ./scripts/test.sh            # or as root; from any directory
#   ./scripts/test.sh -k recovery -x  # extra arguments go to pytest
#
# ruff, mypy and pytest all run even when one fails; the exit status is
# non-zero when any of them (or the set-up) failed, or when pytest ran no test.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT" || exit 1

VENV="$REPO_ROOT/.venv"
PYTHON="${PYTHON:-python3}"
ARTIFACTS="$REPO_ROOT/test-artifacts"
JUNIT="$ARTIFACTS/junit.xml"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
red() { printf '\033[31m%s\033[0m\n' "$*"; }

declare -a PHASES=()
declare -a FAILED=()
phase_start=0
begin() {
    phase_start=$SECONDS
    echo
    bold "=== $1 ==="
}
# end NAME RC [NOTE]
end() {
    local took=$((SECONDS - phase_start)) result="ok"
    if [ "$2" -ne 0 ]; then
        result="FAILED (exit $2)${3:+: $3}"
        FAILED+=("$1")
    fi
    PHASES+=("$(printf '%-8s %5ss  %s' "$1" "$took" "$result")")
    bold "=== $1: $result in ${took}s ==="
}

# -- 1. host: Docker engine, test image, PostgreSQL -------------------------
begin "setup"
bash "$REPO_ROOT/scripts/setup-test-env.sh"
rc=$?
end setup "$rc"
if [ "$rc" -ne 0 ]; then
    red "scripts/setup-test-env.sh failed: the test environment is not ready, nothing else was run."
    exit "$rc"
fi

# -- 2. virtualenv with the package and its dev tools -----------------------
begin "venv"
venv_rc=0
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "creating $VENV with $("$PYTHON" --version 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" || venv_rc=$?
fi
if [ "$venv_rc" -eq 0 ]; then
    # Reinstall only when pyproject.toml (or the interpreter) changed.
    stamp="$VENV/.medic-install-stamp"
    want="$(cat pyproject.toml "$VENV/pyvenv.cfg" | sha256sum | cut -c1-32)"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
        && "$VENV/bin/python" -c 'import medic, pytest, mypy' >/dev/null 2>&1 \
        && [ -x "$VENV/bin/ruff" ]; then
        echo "dependencies up to date"
    else
        echo "pip install -e '.[dev]'"
        if "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-input -e '.[dev]'; then
            echo "$want" >"$stamp"
        else
            venv_rc=1
        fi
    fi
fi
end venv "$venv_rc"
if [ "$venv_rc" -ne 0 ]; then
    red "could not build the virtualenv $VENV: nothing else was run."
    exit 1
fi

# -- 3. lint, types, tests: all of them run ----------------------------------
begin "ruff"
"$VENV/bin/ruff" check .
end ruff $?

begin "mypy"
"$VENV/bin/mypy"
end mypy $?

begin "pytest"
mkdir -p "$ARTIFACTS"
rm -f "$JUNIT"
"$VENV/bin/python" -m pytest -ra --junitxml="$JUNIT" "$@"
pytest_rc=$?
if [ "$pytest_rc" -eq 5 ]; then
    red "pytest collected no tests (exit 5): that is a failure, not a pass."
    end pytest 5 "no tests collected"
else
    end pytest "$pytest_rc"
fi

# -- summary ------------------------------------------------------------------
echo
bold "=== summary ==="
printf '  %s\n' "${PHASES[@]}"
printf '  %-8s %5ss\n' "total" "$SECONDS"
counts=""
if [ -f "$JUNIT" ]; then
    counts="$("$VENV/bin/python" - "$JUNIT" <<'PY'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(f"pytest: {total - failed - skipped} passed, {failed} failed, {skipped} skipped")
PY
)"
fi
if [ "${#FAILED[@]}" -gt 0 ]; then
    red "FAILED: ${FAILED[*]}"
    [ -n "$counts" ] && echo "$counts"
    exit 1
fi
bold "all checks passed"
[ -n "$counts" ] && echo "$counts"
exit 0
