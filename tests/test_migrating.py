"""docs/migrating.md: every medic config in it passes ``medic validate``.

A medic config is a fenced ``yaml`` block whose first line is
``# /etc/medic/config.yaml``; it is written to a temporary directory with the
shipped playbooks (its ``playbooks_dir`` pointed at them) and validated by the
real CLI. Each tool's section has one, and every ``medic COMMAND`` the guide
tells a reader to type is a command medic has.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO_ROOT

GUIDE = REPO_ROOT / "docs" / "migrating.md"
MARKER = "# /etc/medic/config.yaml"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SECTIONS = (
    "From autoheal",
    "From Monit",
    "From supervisord",
    "From systemd",
    "From Docker restart policies and HEALTHCHECK",
)


def sections() -> dict[str, str]:
    """Heading -> its text, for every ``## `` section."""
    parts = re.split(r"^## (.+)$", GUIDE.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def medic_configs(text: str) -> list[str]:
    return [
        body
        for lang, body in FENCE.findall(text)
        if lang == "yaml" and body.startswith(MARKER + "\n")
    ]


def all_configs() -> list[tuple[str, int, str]]:
    return [
        (heading, number, body)
        for heading, text in sections().items()
        for number, body in enumerate(medic_configs(text))
    ]


def medic(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "daemon"), env.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", "medic", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_every_tool_has_a_section_with_a_medic_config_and_a_table() -> None:
    found = sections()
    for heading in SECTIONS:
        assert heading in found, f"docs/migrating.md has no section {heading!r}"
        assert medic_configs(found[heading]), f"{heading}: no medic config ({MARKER})"
        assert "| --- | --- |" in found[heading], f"{heading}: no mapping table"


@pytest.mark.parametrize(
    ("heading", "number", "body"),
    all_configs(),
    ids=[f"{heading}-{number}" for heading, number, _ in all_configs()],
)
def test_medic_config_passes_validate(heading: str, number: int, body: str, tmp_path: Path) -> None:
    config = yaml.safe_load(body)
    assert isinstance(config, dict), (heading, number)
    config["playbooks_dir"] = str(REPO_ROOT / "recovery_playbooks")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = medic("validate", "--config", str(path))
    assert result.returncode == 0, f"{heading} #{number}:\n{result.stdout}{result.stderr}"
    assert ": OK:" in result.stdout


def test_every_medic_command_named_exists() -> None:
    named = set(re.findall(r"`medic ([a-z][a-z-]*)", GUIDE.read_text()))
    assert {"validate", "status", "recover", "reset"} <= named
    for command in sorted(named):
        result = medic(command, "--help")
        assert result.returncode == 0, f"`medic {command}` is not a command: {result.stderr}"
