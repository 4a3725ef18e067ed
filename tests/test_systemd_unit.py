"""The shipped unit file parses cleanly under systemd and keeps its key directives."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "medic.service"
SHIPPED_BINARY = "/opt/medic/venv/bin/medic"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def directives(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def unit_with_existing_binary(tmp_path: Path) -> Path:
    """Copy the unit, pointing ExecStart at a wrapper that exists on this machine.

    ``verify`` rejects an ExecStart binary that is not there, and the shipped
    one lives in the production venv.
    """
    wrapper = tmp_path / "medic"
    wrapper.write_text(f"#!{sys.executable}\nraise SystemExit('stand-in for verify, never run')\n")
    wrapper.chmod(0o755)
    original = UNIT.read_text()
    rewritten = original.replace(f"ExecStart={SHIPPED_BINARY} ", f"ExecStart={wrapper} ")
    copy = tmp_path / "medic.service"
    copy.write_text(rewritten)
    return copy


def test_verify_is_clean(tmp_path: Path) -> None:
    copy = unit_with_existing_binary(tmp_path)
    changed = [
        (before, after)
        for before, after in zip(
            UNIT.read_text().splitlines(), copy.read_text().splitlines(), strict=True
        )
        if before != after
    ]
    assert len(changed) == 1
    before, after = changed[0]
    assert before.startswith(f"ExecStart={SHIPPED_BINARY} ")
    assert after == before.replace(SHIPPED_BINARY, str(tmp_path / "medic"))

    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # verify exits 0 even when it warns about unknown or bad directives.
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_key_directives() -> None:
    found = directives(UNIT.read_text())
    for expected in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("Restart", "on-failure"),
        ("StateDirectory", "medic"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("WantedBy", "multi-user.target"),
    ]:
        assert expected in found, expected
    exec_start = dict(found)["ExecStart"]
    assert exec_start == (
        f"{SHIPPED_BINARY} run --config /etc/medic/config.yaml "
        "--state-dir /var/lib/medic --log-format json"
    )


def test_no_user_switch() -> None:
    # medic needs root for the Docker socket and for restarting other units.
    keys = {key for key, _ in directives(UNIT.read_text())}
    assert not keys & {"User", "DynamicUser", "PrivateUsers"}


def test_security_exposure_stays_low() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for medic\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    # 3.0 offline (2.9 under systemd 252 in tests/systemd); root is required,
    # and the README explains each exposure left.
    assert float(match[1]) <= 3.0
