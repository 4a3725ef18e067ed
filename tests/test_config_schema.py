"""``medic schema``: the JSON Schema editors check ``config.yaml`` with.

The shipped ``control-plane/config.schema.json`` is what ``medic schema``
prints; every shipped config points at it on its first line and passes it;
the configs medic refuses for a schema reason an editor could see, the schema
refuses too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from medic.cli.install import find_shipped, plan, venv_binary
from tests.test_config import FIXTURES, REPO_ROOT, SHIPPED_CONFIGS

SHIPPED_SCHEMA = REPO_ROOT / "control-plane" / "config.schema.json"
HEADER = "# yaml-language-server: $schema="


def medic_schema() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "medic", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SHIPPED_SCHEMA.read_text(encoding="utf-8"))
    return loaded


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_what_medic_schema_prints() -> None:
    printed = medic_schema()
    assert SHIPPED_SCHEMA.read_text(encoding="utf-8") == printed, (
        "control-plane/config.schema.json is stale: run"
        " `python -m medic schema > control-plane/config.schema.json`"
    )


@pytest.mark.parametrize("config", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_point_editors_at_the_schema_and_pass_it(
    config: Path, schema: dict[str, Any]
) -> None:
    first = config.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(HEADER), f"{config}: first line is {first!r}"
    target = (config.parent / first.removeprefix(HEADER).strip()).resolve()
    assert target == SHIPPED_SCHEMA.resolve()
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    errors = [f"{list(e.path)}: {e.message}" for e in validator(schema).iter_errors(data)]
    assert errors == []


def test_durations_are_numbers_or_strings_like_30s(schema: dict[str, Any]) -> None:
    check = validator(schema)

    def monitoring(value: Any) -> dict[str, Any]:
        return {"monitoring": {"health_check_interval": value}}

    for good in (30, 2.5, "30s", "500ms", "5m", "1h", "1d", "10"):
        assert check.is_valid(monitoring(good)), good
    for bad in ("thirty", "5 minutes", -1, True, [5]):
        assert not check.is_valid(monitoring(bad)), bad
    zero_interval = {"services": {"a": {"check": {"type": "tcp", "port": 1}, "interval": 0}}}
    assert not check.is_valid(zero_interval)


def test_checks_and_steps_are_one_of_by_their_type_or_action(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    check_union = defs["ServiceConfig"]["properties"]["check"]
    step_union = defs["WorkflowConfig"]["properties"]["steps"]["items"]
    for union, tag in ((check_union, "type"), (step_union, "action")):
        members = [defs[ref["$ref"].rsplit("/", 1)[1]] for ref in union["oneOf"]]
        consts = sorted(member["properties"][tag]["const"] for member in members)
        assert sorted(union["discriminator"]["mapping"]) == consts
        assert all(tag in member["required"] for member in members)
    assert "restart_container" in union["discriminator"]["mapping"]
    assert "http" in check_union["discriminator"]["mapping"]


@pytest.mark.parametrize(
    "fixture",
    [
        "typo_top_level",
        "typo_monitoring",
        "typo_service_key",
        "typo_check_option",
        "unknown_check_type",
        "unknown_failure_type",
        "bad_duration",
    ],
)
def test_what_medic_refuses_for_its_shape_the_schema_refuses(
    fixture: str, schema: dict[str, Any]
) -> None:
    data = yaml.safe_load((FIXTURES / f"{fixture}.yaml").read_text(encoding="utf-8"))
    assert not validator(schema).is_valid(data)


def test_install_unit_puts_the_schema_beside_the_config() -> None:
    shipped = find_shipped()
    planned = {file.path.name: file for file in plan(shipped, venv_binary())}
    assert planned["config.schema.json"].content == SHIPPED_SCHEMA.read_text(encoding="utf-8")
    assert planned["config.yaml"].path.parent == planned["config.schema.json"].path.parent
    assert planned["config.yaml"].content.startswith(HEADER + "./config.schema.json\n")
