"""``medic install-unit`` writing into a ``--prefix``: the unit with this venv's
medic, the default config adapted to /etc/medic, an operator's files kept.

The real install (scripts/install.sh, systemctl enable --now) runs under
systemd in tests/systemd/test_medic_service.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medic.cli.install import adapt_config, render_unit
from medic.cli.main import main
from medic.config.load import load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_UNIT = REPO_ROOT / "systemd" / "medic.service"
VENV_MEDIC = Path(sys.executable).parent / "medic"


def install(prefix: Path, *args: str) -> int:
    return main(["install-unit", "--prefix", str(prefix), *args])


def test_writes_the_unit_config_and_playbooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path) == 0

    unit = (tmp_path / "etc/systemd/system/medic.service").read_text()
    assert (
        f"ExecStart={VENV_MEDIC} run --config /etc/medic/config.yaml"
        " --state-dir /var/lib/medic --log-format json"
    ) in unit.splitlines()
    config = tmp_path / "etc/medic/config.yaml"
    loaded = load_config(config)
    assert loaded.model.playbooks_dir == tmp_path / "etc/medic/playbooks"
    assert "restart-unit" in loaded.playbooks
    shipped = sorted(p.name for p in (REPO_ROOT / "recovery_playbooks").glob("*.yaml"))
    assert sorted(p.name for p in (tmp_path / "etc/medic/playbooks").iterdir()) == shipped
    assert (tmp_path / "etc/medic/medic.env").stat().st_mode & 0o777 == 0o600
    out = capsys.readouterr().out
    assert f"wrote {tmp_path}/etc/systemd/system/medic.service" in out


def test_an_operators_files_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(tmp_path) == 0
    config = tmp_path / "etc/medic/config.yaml"
    config.write_text(config.read_text() + "# mine\n")
    capsys.readouterr()

    assert install(tmp_path) == 0

    assert config.read_text().endswith("# mine\n")
    out = capsys.readouterr().out
    assert f"kept {config}: it exists, and medic never overwrites an operator's file" in out
    assert f"unchanged {tmp_path}/etc/systemd/system/medic.service" in out


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(tmp_path, "--dry-run", "--enable") == 1  # --enable never goes with --prefix
    assert install(tmp_path, "--dry-run") == 0
    assert not any(tmp_path.iterdir())
    out = capsys.readouterr().out
    assert f"would write {tmp_path}/etc/systemd/system/medic.service (mode 644)" in out
    assert f"    ExecStart={VENV_MEDIC} run " in out


def test_enable_needs_the_real_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(tmp_path, "--enable") == 1
    assert "--enable installs on this host" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_rendered_unit_only_changes_paths() -> None:
    shipped = SHIPPED_UNIT.read_text().splitlines()
    rendered = render_unit(SHIPPED_UNIT.read_text(), Path("/srv/medic env/bin/medic")).splitlines()
    changed = [(a, b) for a, b in zip(shipped, rendered, strict=True) if a != b]
    assert changed == [
        (
            "ExecStart=/opt/medic/venv/bin/medic run --config /etc/medic/config.yaml"
            " --state-dir /var/lib/medic --log-format json",
            "ExecStart='/srv/medic env/bin/medic' run --config /etc/medic/config.yaml"
            " --state-dir /var/lib/medic --log-format json",
        )
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_written_unit_verifies(tmp_path: Path) -> None:
    assert install(tmp_path) == 0
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "etc/systemd/system/medic.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_adapt_config_keeps_comments() -> None:
    text = "daemon:\n  state_dir: ../x   # why\nplaybooks_dir: ../p  # where\n"
    assert adapt_config(text) == (
        "daemon:\n  state_dir: /var/lib/medic   # why\nplaybooks_dir: playbooks  # where\n"
    )
    assert adapt_config("services: {}\n").endswith("\nplaybooks_dir: playbooks\n")
