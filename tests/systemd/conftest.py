"""Fixtures for the tests under a real systemd: the image, the booted container,
medic installed in it as documented, and the test units it heals.

    systemd_image   session  medic-test:systemd, built once per recipe
    wheelhouse      session  medic's dependencies as wheels (once per dependency set)
    systemd_host    module   a booted container with this checkout at /src/medic
    installed       module   the output of ``scripts/install.sh`` run in that container
    healing         module   medic restarted on tests/systemd/files/config.yaml with
                             demo-http, demo-limited and fake-docker running

When the module ends, the container's journal is saved to
``test-artifacts/systemd-journal-<module>.txt`` and the container removed
(kept with ``MEDIC_TEST_KEEP_CONTAINER=1``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.helpers import wait_for
from tests.plugins.docker import OWNER_LABEL, TEST_LABEL
from tests.systemd.host import (
    BOOT_STATES,
    REPO_ROOT,
    SOURCE_DIR,
    WHEELHOUSE_DIR,
    ExecError,
    SystemdHost,
    build_image,
    build_wheelhouse,
    owner_labels,
)

FILES = Path(__file__).parent / "files"
ARTIFACTS = REPO_ROOT / "test-artifacts"
BOOT_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
KEEP_ENV = "MEDIC_TEST_KEEP_CONTAINER"
"""Set to 1 to keep the container after the tests, to look around in it."""
API_TOKEN = "systemd-test-" + secrets.token_hex(8)
# Offline installs from the mounted wheelhouse: the container has no network.
PIP_OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": WHEELHOUSE_DIR}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medic-test"


@pytest.fixture(scope="session")
def systemd_image(docker_client: docker.DockerClient) -> str:
    return build_image()


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    return build_wheelhouse(_cache_dir())


@pytest.fixture(scope="module")
def systemd_host(
    request: pytest.FixtureRequest, systemd_image: str, wheelhouse: Path
) -> Iterator[SystemdHost]:
    host = SystemdHost.start(systemd_image, wheelhouse, owner_labels(TEST_LABEL, OWNER_LABEL))
    try:
        wait_for(
            lambda: host.boot_state() in BOOT_STATES,
            timeout=BOOT_TIMEOUT_S,
            interval=0.1,
            message=f"systemd in {host.name} did not finish booting",
        )
        host.copy_checkout()
        yield host
    finally:
        _save_journal(host, request.module.__name__.rsplit(".", 1)[-1])
        if os.environ.get(KEEP_ENV) == "1":
            print(f"\n{KEEP_ENV}=1: kept container {host.name}")
        else:
            host.remove()


def _save_journal(host: SystemdHost, module: str) -> None:
    with contextlib.suppress(Exception):
        ARTIFACTS.mkdir(exist_ok=True)
        journal = host.run("journalctl", "--no-pager", "-o", "short-precise").stdout
        (ARTIFACTS / f"systemd-journal-{module}.txt").write_text(journal)


def wait_active(host: SystemdHost, unit: str = "medic.service") -> None:
    wait_for(
        lambda: host.prop(unit, "ActiveState") == "active",
        timeout=READY_TIMEOUT_S,
        interval=0.1,
        message=f"{unit} did not become active",
    )


@pytest.fixture(scope="module")
def installed(systemd_host: SystemdHost) -> str:
    """``scripts/install.sh`` as the README says, offline; returns what it printed."""
    done = systemd_host.run(
        "bash", f"{SOURCE_DIR}/scripts/install.sh", env=PIP_OFFLINE, timeout=300
    )
    if done.returncode != 0:
        raise ExecError(f"install.sh exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def install_test_units(host: SystemdHost) -> None:
    for name in ("demo-http.service", "demo-limited.service", "fake-docker.service"):
        host.write(f"/etc/systemd/system/{name}", (FILES / name).read_text())
    host.write("/usr/local/lib/medic-test/fake_docker.py", (FILES / "fake_docker.py").read_text())
    host.write("/srv/demo/index.html", "demo\n")
    host.systemctl("daemon-reload")
    host.systemctl("start", "demo-http", "demo-limited", "fake-docker")


@pytest.fixture(scope="module")
def healing(systemd_host: SystemdHost, installed: str) -> SystemdHost:
    """medic on the test config, with the units it watches running."""
    host = systemd_host
    install_test_units(host)
    host.write("/etc/medic/medic.env", f"MEDIC_API_TOKEN={API_TOKEN}\n", mode=0o600)
    host.write("/etc/medic/config.yaml", (FILES / "config.yaml").read_text())
    host.systemctl("restart", "medic")
    wait_active(host)
    return host
