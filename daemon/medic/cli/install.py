"""``medic install-unit``: put medic on a host as a systemd service.

This module owns what the command writes and where: the unit file (the
shipped ``systemd/medic.service`` with ``ExecStart`` pointing at the ``medic``
of the virtualenv this command runs from), and, only when they are absent,
the default config and the shipped playbooks under ``/etc/medic``. An
operator's config, playbooks and ``medic.env`` are never overwritten. With
``--enable`` it then runs ``systemctl daemon-reload`` and
``systemctl enable --now medic.service``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from medic.cli import CliError
from medic.config.load import load_config
from medic.core.errors import ConfigFileError, ConfigInvalid

UNIT_NAME = "medic.service"
UNIT_DIR = Path("/etc/systemd/system")
CONFIG_DIR = Path("/etc/medic")
STATE_DIR = Path("/var/lib/medic")
"""Fixed by ``StateDirectory=medic`` in the unit."""
PLAYBOOKS_SUBDIR = "playbooks"

_ENV_TEMPLATE = """\
# Environment for medic.service (systemd EnvironmentFile=): secrets stay here,
# never in config.yaml. Readable by root only.
# MEDIC_API_TOKEN=change-me        # bearer token for the control endpoints
# DATABASE_URL=postgresql://...
"""


class InstallError(CliError):
    """The install cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Shipped:
    """Where the files shipped with medic are: a source checkout or ``share/medic``."""

    root: Path

    @property
    def unit(self) -> Path:
        return self.root / "systemd" / UNIT_NAME

    @property
    def config(self) -> Path:
        return self.root / "control-plane" / "config.yaml"

    @property
    def schema(self) -> Path:
        """The config's JSON Schema, which the config's first line points editors at."""
        return self.root / "control-plane" / "config.schema.json"

    @property
    def playbooks(self) -> list[Path]:
        return sorted((self.root / "recovery_playbooks").glob("*.yaml"))


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    """Where the file goes on the host (before ``--prefix``)."""
    content: str
    mode: int
    replace: bool
    """True for medic's own files (the unit); False for the operator's (config)."""


def find_shipped() -> Shipped:
    """The source checkout this module runs from, else the wheel's ``share/medic``."""
    checkout = Path(__file__).resolve().parents[3]
    for root in (checkout, Path(sys.prefix) / "share" / "medic"):
        if Shipped(root).unit.is_file():
            return Shipped(root)
    raise InstallError(
        f"cannot find the shipped {UNIT_NAME}: looked in {checkout}/systemd and "
        f"{sys.prefix}/share/medic/systemd (reinstall the medic package)"
    )


def venv_binary() -> Path:
    """The ``medic`` script beside this interpreter (its virtualenv's ``bin``)."""
    # Not resolved: a venv's python is a symlink to the system one, whose
    # directory has no medic.
    binary = Path(sys.executable).parent / "medic"
    if not binary.is_file():
        raise InstallError(
            f"no medic script beside {sys.executable}: run the medic of the virtualenv "
            "medic is installed in (e.g. /opt/medic/venv/bin/medic install-unit)"
        )
    return binary.absolute()


def render_unit(template: str, binary: Path) -> str:
    """The shipped unit with ExecStart, MEDIC_CONFIG and EnvironmentFile for this host."""
    config = CONFIG_DIR / "config.yaml"
    argv = [str(binary), "run", "--config", str(config), "--state-dir", str(STATE_DIR)]
    replacements = {
        "ExecStart": shlex.join([*argv, "--log-format", "json"]),
        "Environment": f"MEDIC_CONFIG={config}",
        "EnvironmentFile": f"-{CONFIG_DIR / 'medic.env'}",
    }
    lines = []
    for line in template.splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={replacements[key]}" if key in replacements else line)
    return "\n".join(lines) + "\n"


def adapt_config(text: str) -> str:
    """The default config, pointed at ``/etc/medic/playbooks`` and ``/var/lib/medic``.

    Only the two values change, so the comments that explain the file stay.
    """
    text = re.sub(r"(?m)^(\s+state_dir:[ \t]*)\S+", rf"\g<1>{STATE_DIR}", text, count=1)
    text, found = re.subn(
        r"(?m)^(playbooks_dir:[ \t]*)\S+", rf"\g<1>{PLAYBOOKS_SUBDIR}", text, count=1
    )
    if not found:
        text = text.rstrip("\n") + f"\n\nplaybooks_dir: {PLAYBOOKS_SUBDIR}\n"
    return text


def plan(shipped: Shipped, binary: Path) -> list[PlannedFile]:
    """Every file the install writes, medic's own first."""
    unit = render_unit(shipped.unit.read_text(), binary)
    files = [
        PlannedFile(UNIT_DIR / UNIT_NAME, unit, 0o644, replace=True),
        PlannedFile(
            CONFIG_DIR / "config.yaml",
            adapt_config(shipped.config.read_text()),
            0o644,
            replace=False,
        ),
        PlannedFile(CONFIG_DIR / "medic.env", _ENV_TEMPLATE, 0o600, replace=False),
    ]
    if shipped.schema.is_file():
        schema = shipped.schema.read_text()
        files.append(PlannedFile(CONFIG_DIR / shipped.schema.name, schema, 0o644, replace=True))
    for playbook in shipped.playbooks:
        target = CONFIG_DIR / PLAYBOOKS_SUBDIR / playbook.name
        files.append(PlannedFile(target, playbook.read_text(), 0o644, replace=False))
    return files


def under(prefix: Path | None, path: Path) -> Path:
    return prefix / path.relative_to("/") if prefix is not None else path


def apply(files: Iterable[PlannedFile], prefix: Path | None, out: TextIO) -> None:
    """Write the planned files, leaving an operator's existing files alone."""
    for file in files:
        target = under(prefix, file.path)
        if target.exists() and not file.replace:
            print(
                f"kept {target}: it exists, and medic never overwrites an operator's file", file=out
            )
            continue
        if target.exists() and target.read_text() == file.content:
            print(f"unchanged {target}", file=out)
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_text(file.content)
        target.chmod(file.mode)
        print(f"wrote {target}", file=out)


def describe(files: Iterable[PlannedFile], prefix: Path | None, out: TextIO) -> None:
    """What :func:`apply` would do, with the unit's full text."""
    for file in files:
        target = under(prefix, file.path)
        if target.exists() and not file.replace:
            print(f"would keep {target} (it exists)", file=out)
        else:
            print(f"would write {target} (mode {file.mode:o})", file=out)
        if file.replace:
            print("".join(f"    {line}\n" for line in file.content.splitlines()), end="", file=out)


def validate(config: Path) -> None:
    """Refuse to enable a service whose config would stop it from starting."""
    try:
        load_config(config)
    except ConfigFileError as exc:
        raise InstallError(f"{exc}; fix it, then run install-unit again") from exc
    except ConfigInvalid as exc:
        issues = "\n".join(str(issue) for issue in exc.issues)
        raise InstallError(f"{config} is invalid:\n{issues}") from exc


ENABLE_COMMANDS = (
    ["systemctl", "daemon-reload"],
    ["systemctl", "enable", "--now", UNIT_NAME],
)


def enable(out: TextIO) -> None:
    for argv in ENABLE_COMMANDS:
        print(f"running {shlex.join(argv)}", file=out)
        done = subprocess.run(argv, check=False)
        if done.returncode != 0:
            raise InstallError(
                f"{shlex.join(argv)} exited {done.returncode}; see journalctl -u {UNIT_NAME}"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefix",
        type=Path,
        help="write under this directory instead of / (for packaging); paths in the unit stay",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written, write nothing"
    )
    parser.add_argument(
        "--enable",
        action="store_true",
        help=f"then run systemctl daemon-reload and systemctl enable --now {UNIT_NAME}",
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The ``install-unit`` command; exit 0 done, 1 refused or failed."""
    out = out or sys.stdout
    prefix: Path | None = args.prefix.absolute() if args.prefix else None
    try:
        if args.enable and prefix is not None:
            raise InstallError("--enable installs on this host: it cannot go with --prefix")
        files = plan(find_shipped(), venv_binary())
        if args.dry_run:
            describe(files, prefix, out)
            if args.enable:
                print("would run: " + "; ".join(map(shlex.join, ENABLE_COMMANDS)), file=out)
            return 0
        apply(files, prefix, out)
        validate(under(prefix, CONFIG_DIR / "config.yaml"))
        if args.enable:
            enable(out)
    except InstallError as exc:
        print(f"medic install-unit: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(
            f"medic install-unit: {exc.strerror}: {exc.filename} (run as root, or use "
            "--prefix DIR)",
            file=sys.stderr,
        )
        return 1
    return 0
