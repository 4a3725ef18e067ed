"""The idle footprint: a daemon on the shipped default config loads no driver it
does not use (issue 15). ``docker`` (with ``requests`` and ``urllib3``) and
``asyncpg`` cost about 9 MiB and 80 ms of start-up; the default config names no
container and no database, so they must stay out of the process.

The witness is the daemon's own ``sys.modules`` at exit: ``medic run`` runs in
a subprocess through a two-line wrapper that writes the module names when the
interpreter exits (after SIGTERM), once both default checks have run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.http import http_request, parse_body

DEFAULT_CONFIG = REPO_ROOT / "control-plane" / "config.yaml"
DEFAULT_PORT = "127.0.0.1:8321"
HEAVY_OPTIONAL = ("docker", "requests", "urllib3", "asyncpg", "rich")
"""``rich``: structlog loads it when installed (here it comes with a test
dependency) for tracebacks medic never renders: 3.5 MiB."""
LOADED_ON_FIRST_USE = ("medic.api.openapi", "medic.api._schemas", "medic.api._typed_schemas")
"""The OpenAPI document's schemas: built by the first request for it."""

_DUMP_MODULES_AT_EXIT = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from medic.cli.main import main
sys.exit(main())
"""


def _default_config_on(tmp_path: Path, port: int) -> Path:
    """The shipped config as it is, but on a free port and with the shipped playbooks."""
    text = DEFAULT_CONFIG.read_text()
    assert DEFAULT_PORT in text, "the default config no longer listens on 127.0.0.1:8321"
    text = text.replace(DEFAULT_PORT, f"127.0.0.1:{port}")
    text = text.replace("../recovery_playbooks", str(REPO_ROOT / "recovery_playbooks"))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _both_checked(url: str) -> bool:
    status, raw = http_request(url + "/api/v1/services", headers={"Accept": "application/json"})
    if status != 200:
        return False
    services = parse_body(raw)["services"]
    return len(services) == 2 and all(s.get("last_check") for s in services)


def test_default_config_daemon_loads_no_docker_or_database_driver(tmp_path: Path) -> None:
    port = free_port()
    config = _default_config_on(tmp_path, port)
    modules_file = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env.pop("NOTIFY_SOCKET", None)
    env["PYTHONPATH"] = str(REPO_ROOT / "daemon")
    cmd = [sys.executable, "-c", _DUMP_MODULES_AT_EXIT, str(modules_file), "run"]
    cmd += ["--config", str(config), "--state-dir", str(tmp_path / "state")]
    cmd += ["--log-format", "json"]
    with (tmp_path / "daemon.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _both_checked(url), 30, interval=0.1, message="no first checks")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    loaded = set(json.loads(modules_file.read_text()))
    assert "medic.watch.checks.http" in loaded  # the witness saw the checks' code
    assert "medic.host.docker" in loaded and "medic.host.postgres" in loaded
    assert not [name for name in HEAVY_OPTIONAL if name in loaded]
    assert not [name for name in LOADED_ON_FIRST_USE if name in loaded]
