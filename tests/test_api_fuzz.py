"""Fuzz the API of a real daemon from its own OpenAPI document (schemathesis
and hypothesis): every operation gets its documented examples, then valid
(positive) and invalid (negative) requests with the bearer token. No answer
may be a 5xx, every answer must be documented (status, content type, schema),
invalid data must be refused with a 4xx, and the daemon must still be
healthy at the end.

``GET /api/v1/events`` is not fuzzed: it is an endless server-sent event
stream, so a request to it never ends and there is no response to check;
``tests/test_status_page.py`` covers it through the status page.
"""

from __future__ import annotations

import time
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, strategies
from schemathesis import APIOperation, Case
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from medic.api.openapi import OPENAPI_PATH
from medic.core.vocabulary import FailureType
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory, DaemonProcess

TOKEN = "fuzz-token"
NOT_FUZZED = {("GET", "/api/v1/events")}
EXAMPLES_PER_MODE = 25
FUZZ_BUDGET_S = 60.0
_ANY_STRING = {"type": "string"}

POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]

HARMLESS_PLAYBOOK = f"""
description: the fuzz's only playbook; it runs `true`
failure_types: [{", ".join(t.value for t in FailureType)}]
steps:
  - {{action: run_command, command: ["true"], timeout: 5s}}
"""

SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES_PER_MODE,
    deadline=None,
    database=None,
    derandomize=True,  # the same requests on every run: CI stays reproducible
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


@pytest.fixture
def fuzz_daemon(medic_daemon: DaemonFactory, listening_port: int) -> DaemonProcess:
    # The names match the document's examples ("web", "revenue-automation"), so
    # the example phase hits real resources, not only 404s.
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring:
  health_check_interval: 500ms
  failure_threshold: 1
  recovery: {{max_attempts: 3, backoff: {{initial: 1s}}}}
playbooks_dir: playbooks
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
  database:
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
workflows:
  revenue-automation:
    priority: high
    schedule: {{interval: 1h}}
    steps:
      - {{name: extract, action: run_command, command: [echo, extracted]}}
      - {{name: load, action: sleep, duration: 10ms, depends_on: [extract]}}
"""
    return medic_daemon(
        config, env={"MEDIC_API_TOKEN": TOKEN}, playbooks={"harmless": HARMLESS_PLAYBOOK}
    )


def fuzzed_operations(daemon: DaemonProcess) -> list[APIOperation]:
    status, document = daemon.get(OPENAPI_PATH)
    assert status == 200
    # Every request carries the real token (Fuzzer.headers); left in, the
    # security requirements would make schemathesis invent Authorization
    # headers of its own. Refusing a wrong token is tested in test_openapi.py.
    for item in document["paths"].values():
        for operation in item.values():
            operation.pop("security", None)
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if (op.method.upper(), op.path) not in NOT_FUZZED]


def can_be_invalid(operation: APIOperation) -> bool:
    """Whether a request to ``operation`` can carry invalid data at all (any
    path segment is a valid string, so a plain string parameter cannot)."""
    constrained = [p for p in operation.iter_parameters() if p.definition["schema"] != _ANY_STRING]
    return bool(constrained) or bool(operation.body)


class Fuzzer:
    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.statuses: dict[str, set[int]] = {}

    def send(self, case: Case, checks: list[Any]) -> None:
        response = case.call(base_url=self.daemon.url, headers=self.headers, timeout=30)
        self.statuses.setdefault(case.operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=checks, headers=self.headers)

    def run(self, strategy: strategies.SearchStrategy[Case], checks: list[Any]) -> None:
        @SETTINGS
        @hypothesis.given(case=strategy)
        def one(case: Case) -> None:
            self.send(case, checks)

        one()

    def fuzz(self, operation: APIOperation) -> None:
        for example in operation.get_strategies_from_examples():
            self.run(example, POSITIVE_CHECKS)
        self.run(operation.as_strategy(GenerationMode.POSITIVE), POSITIVE_CHECKS)
        if can_be_invalid(operation):
            self.run(operation.as_strategy(GenerationMode.NEGATIVE), NEGATIVE_CHECKS)


def test_fuzz_the_api_from_its_openapi_document(fuzz_daemon: DaemonProcess) -> None:
    operations = fuzzed_operations(fuzz_daemon)
    assert len(operations) >= 20, [op.label for op in operations]
    fuzzer = Fuzzer(fuzz_daemon)
    started = time.monotonic()
    for operation in operations:
        fuzzer.fuzz(operation)
    took = time.monotonic() - started
    assert took < FUZZ_BUDGET_S, f"the fuzz took {took:.0f}s"
    assert set(fuzzer.statuses) == {op.label for op in operations}
    assert fuzz_daemon.running, "the daemon died under the fuzz"
    status, health = fuzz_daemon.get("/api/v1/health")
    assert status == 200 and health["status"] == "healthy"
    reached = {op: codes for op, codes in fuzzer.statuses.items() if codes & {200, 202}}
    assert "GET /api/v1/services/{name}" in reached, fuzzer.statuses
    assert "POST /api/v1/workflows/{id}/run" in reached, fuzzer.statuses
