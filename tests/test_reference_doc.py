"""``docs/reference.md`` names everything medic offers: every key of the JSON
Schema of the config, every route of the OpenAPI document and every metric
family of a running daemon's ``/metrics``, every event medic publishes, every
CLI command, failure type and action. What another branch adds shows up here
as a failure until the reference names it."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from medic.cli.main import _parser
from medic.config.actions import ACTION_OPTIONS
from medic.config.schema import config_schema
from medic.core.bus import PUBLISHED_EVENTS
from medic.core.vocabulary import FailureType
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_config import REPO_ROOT, SHIPPED_PLAYBOOKS

REFERENCE = REPO_ROOT / "docs" / "reference.md"
TOKEN = "reference-doc-token"


@pytest.fixture(scope="module")
def text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def missing(names: Iterator[str] | list[str] | set[str], text: str) -> list[str]:
    """The names that do not appear in ``text`` in backticks (`` `name` ``, or
    `` `name`` followed by a space, as in `` `GET /path` ``)."""
    return sorted({n for n in names if f"`{n}`" not in text and f"`{n} " not in text})


def key_paths(node: Any, defs: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Every key of the schema as a dotted path: ``<name>`` for a key you choose
    (a service), ``[]`` for each item of a list; the members of a check's or a
    step's ``oneOf`` share their paths."""
    while isinstance(node, dict) and "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    if not isinstance(node, dict):
        return
    for key in ("anyOf", "oneOf"):
        for member in node.get(key, []):
            yield from key_paths(member, defs, prefix)
    if "items" in node:
        yield from key_paths(node["items"], defs, f"{prefix}[]")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield from key_paths(extra, defs, f"{prefix}.<name>")
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path
        yield from key_paths(sub, defs, path)


def test_every_config_key_is_in_the_reference(text: str) -> None:
    schema = config_schema()
    paths = set(key_paths(schema, schema["$defs"]))
    assert len(paths) > 150  # the walk found the whole schema, not one section
    assert "services.<name>.check.url" in paths
    assert "workflows.<name>.steps[].command" in paths
    assert missing(paths, text) == []


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon with a service, a workflow and a webhook: every metric family."""
    registry: list[DaemonProcess] = []
    factory = DaemonFactory(tmp_path_factory.mktemp("reference"), registry)
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 500ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  gone:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
workflows:
  hello:
    steps:
      - {{name: greet, action: run_command, command: [echo, hello]}}
notifications:
  webhooks:
    - {{name: ops, url: "http://127.0.0.1:{free_port()}/", events: [circuit.opened]}}
"""
    playbook = "failure_types: [service_crash]\nsteps:\n  - {action: notify}\n"
    try:
        yield factory(config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks={"tell": playbook})
    finally:
        factory.cleanup()


def test_every_route_of_the_openapi_document_is_in_the_reference(
    daemon: DaemonProcess, text: str
) -> None:
    status, document = daemon.get("/api/v1/openapi.json")
    assert status == 200
    document = document if isinstance(document, dict) else json.loads(document)
    routes = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert "GET /api/v1/services/{name}" in routes
    assert missing(routes, text) == []


def test_every_metric_of_a_running_daemon_is_in_the_reference(
    daemon: DaemonProcess, text: str
) -> None:
    status, body = daemon.get("/metrics")
    assert status == 200
    families = list(text_string_to_metric_families(body))
    # The parser names a counter's family without ``_total``; ``_created``
    # series are prometheus-client's timestamps of the counters beside them.
    names = {
        f.name + "_total" if f.type == "counter" and f"`{f.name}`" not in text else f.name
        for f in families
        if not f.name.endswith("_created")
    }
    assert "medic_service_up" in names
    assert missing(names, text) == []


def published_events() -> set[str]:
    """What medic publishes itself, and the events of the shipped playbooks' notify steps."""
    events = set(PUBLISHED_EVENTS)
    for file in SHIPPED_PLAYBOOKS:
        playbook = yaml.safe_load(file.read_text(encoding="utf-8"))
        for step in (*playbook.get("steps", []), *playbook.get("on_failure", [])):
            if step.get("action") == "notify":
                events.add(step.get("event", "notify"))
    return events


def test_every_event_medic_publishes_is_in_the_reference(text: str) -> None:
    events = published_events()
    assert "circuit.opened" in events
    assert missing(events, text) == []


def test_every_cli_command_failure_type_and_action_is_in_the_reference(text: str) -> None:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = [f"medic {name}" for name in sub.choices]
    assert [c for c in commands if not re.search(rf"`{c}[` ]", text)] == []
    assert missing([t.value for t in FailureType], text) == []
    actions = [m.model_fields["action"].annotation.__args__[0] for m in ACTION_OPTIONS]
    assert "restart_container" in actions
    assert missing(actions, text) == []


def test_the_readme_points_at_the_reference_not_at_a_file_outside_the_clone() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/reference.md" in readme
    assert "../shared/design.md" not in readme
