"""Dependencies run one way: each stage's package, imported alone in a fresh
interpreter with every module in it, brings along only the stages below it.

The stages follow the data (config -> watch -> heal -> record and tell); each
folder's ``__init__`` docstring says what it may import, and this is where
that is checked. A stage that needs something from a later one declares a
port (a Protocol) that the later one implements, and ``medic.orchestrator``
wires the two together.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import medic

PACKAGE = Path(medic.__file__).parent

ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "config": {"core", "config"},
    "host": {"core", "config", "host"},
    "watch": {"core", "config", "host", "watch"},
    "heal": {"core", "config", "host", "watch", "heal"},
    "workflows": {"core", "config", "host", "watch", "heal", "workflows"},
    "fleet": {"core", "config", "host", "watch", "heal", "fleet"},
    "store": {"core", "host", "store"},
    "tell": {"core", "config", "tell"},
    # The CLI's control commands and `medic validate` load no stage of the
    # daemon; `medic run` imports it when it runs.
    "cli": {"core", "config", "cli"},
}
"""For each stage, the medic packages that importing all of it may load."""

_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted({n.split(".")[1] for n in sys.modules if n.startswith("medic.")})))
"""


def loaded_with(stage: str) -> set[str]:
    """The medic packages a fresh interpreter holds after importing all of ``stage``."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, f"medic.{stage}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_a_stage_imports_only_the_stages_below_it(stage: str) -> None:
    loaded = loaded_with(stage)
    assert stage in loaded
    assert loaded <= ALLOWED[stage], f"medic.{stage} pulls in {sorted(loaded - ALLOWED[stage])}"


def test_every_stage_is_checked() -> None:
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    on_top = {"api"}  # the API may use every stage and the orchestrator
    assert folders - on_top == set(ALLOWED)


def test_every_stage_says_what_it_owns_and_may_import() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        text = init.read_text()
        assert text.startswith('"""'), f"{init} has no docstring"
        assert "May import:" in text, f"{init} does not say what it may import"


def test_no_module_is_much_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 420} == {}


def test_no_function_is_much_over_40_lines() -> None:
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 45:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = lines
    assert long == {}
