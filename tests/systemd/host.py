"""A Debian bookworm container that boots systemd as PID 1, driven with ``docker exec``.

The image comes from ``scripts/build-systemd-image.sh`` (cached by a hash of
its recipe). medic is not in it: :func:`build_wheelhouse` fetches medic's
dependencies once per dependency set into a wheelhouse on this host, which
the container mounts read-only, so ``scripts/install.sh`` runs there offline.

The container gets its own cgroup namespace and CAP_SYS_ADMIN, which systemd
needs to manage units; never ``--privileged`` and never the host's
``/sys/fs/cgroup``: both reach past the container into the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-systemd-image.sh"
IMAGE = "medic-test:systemd"
SOURCE_DIR = "/src/medic"
"""Where the checkout is copied inside the container."""
WHEELHOUSE_DIR = "/wheelhouse"
API = "http://127.0.0.1:8321"

RUN_FLAGS = (
    "--cgroupns=private",
    "--cap-add=SYS_ADMIN",
    "--tmpfs=/run",
    "--tmpfs=/run/lock",
    "--stop-signal=SIGRTMIN+3",
    "--env=container=docker",
)
BOOT_STATES = ("running", "degraded")
"""``systemctl is-system-running`` once boot is over; degraded = a unit failed."""


class ExecError(AssertionError):
    """A command in the container failed; the message carries its output."""


def build_image() -> str:
    """Build (or reuse) the systemd image; returns its name."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{BUILD_SCRIPT} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def _requirements() -> list[str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def build_wheelhouse(cache_dir: Path) -> Path:
    """Wheels of medic's dependencies and build backend, made once per set of them."""
    requirements = _requirements()
    tag = f"{sys.version_info.major}{sys.version_info.minor}"
    key = hashlib.sha256("\n".join([tag, *requirements]).encode()).hexdigest()[:16]
    target = cache_dir / f"wheelhouse-{key}"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="wheelhouse-", dir=cache_dir))
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(staging)]
    done = subprocess.run(
        [*argv, *requirements], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise AssertionError(f"pip wheel failed:\n{done.stderr[-3000:]}")
    try:
        staging.rename(target)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target


class SystemdHost:
    """One booted container; every method runs a command in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def start(cls, image: str, wheelhouse: Path, labels: Mapping[str, str]) -> SystemdHost:
        name = f"medic-systemd-{secrets.token_hex(3)}"
        label_flags = [f"--label={key}={value}" for key, value in labels.items()]
        mount = f"--volume={wheelhouse}:{WHEELHOUSE_DIR}:ro"
        argv = ["docker", "run", "--detach", f"--name={name}", *RUN_FLAGS, mount, *label_flags]
        done = subprocess.run([*argv, image], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"docker run of {image} failed: {done.stderr.strip()}")
        return cls(name)

    def remove(self) -> None:
        subprocess.run(
            ["docker", "rm", "--force", self.name], capture_output=True, timeout=60, check=False
        )

    # running commands ------------------------------------------------------------------

    def run(
        self,
        *argv: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        env_flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
        interactive = ["--interactive"] if stdin is not None else []
        done = subprocess.run(
            ["docker", "exec", *interactive, *env_flags, self.name, *argv],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def check(self, *argv: str, **kwargs: Any) -> str:
        """Run *argv*; its stdout, or ExecError with its output when it fails."""
        done = self.run(*argv, **kwargs)
        if done.returncode != 0:
            raise ExecError(
                f"{shlex.join(argv)} exited {done.returncode} in {self.name}:\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return done.stdout

    def sh(self, script: str, **kwargs: Any) -> str:
        return self.check("sh", "-ec", script, **kwargs)

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        script = f'mkdir -p "$(dirname {path})" && cat >{path} && chmod {mode:o} {path}'
        self.sh(script, stdin=text.encode())

    def copy_checkout(self) -> None:
        """The working tree as git sees it (tracked and new files), at SOURCE_DIR."""
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
        present = b"\0".join(
            f for f in files.split(b"\0") if f and (REPO_ROOT / f.decode()).exists()
        )
        archive = subprocess.run(
            ["tar", "--null", "-T", "-", "-cf", "-"],
            cwd=REPO_ROOT,
            input=present,
            capture_output=True,
            check=True,
        ).stdout
        self.sh(f"mkdir -p {SOURCE_DIR} && tar -x -C {SOURCE_DIR}", stdin=archive)

    # systemd ---------------------------------------------------------------------------

    def boot_state(self) -> str:
        return self.run("systemctl", "is-system-running").stdout.strip()

    def systemctl(self, *args: str, timeout: float = 60) -> str:
        return self.check("systemctl", "--no-pager", *args, timeout=timeout)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.systemctl("show", unit, "--property=" + ",".join(properties))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def prop(self, unit: str, name: str) -> str:
        return self.show(unit, name)[name]

    def journal(self, unit: str, *, since_cursor: str | None = None) -> list[dict[str, Any]]:
        """The unit's journal entries (``journalctl -o json``), oldest first.

        What the unit logged and what systemd logged about it, as ``-u`` picks
        them; filtered here because v252's ``-u`` with ``--after-cursor`` skips
        the first match when the cursor's own entry does not match.
        """
        name = unit if "." in unit else f"{unit}.service"
        argv = ["journalctl", "--no-pager", "-o", "json"]
        if since_cursor:
            argv.append(f"--after-cursor={since_cursor}")
        entries = [json.loads(line) for line in self.check(*argv).splitlines() if line.strip()]
        return [e for e in entries if name in (e.get("_SYSTEMD_UNIT"), e.get("UNIT"))]

    def cursor(self) -> str:
        """The journal's current end, to read only what comes after it."""
        last = self.check("journalctl", "--no-pager", "-o", "json", "-n", "1")
        return str(json.loads(last)["__CURSOR"]) if last.strip() else ""

    # medic's API, from inside the container ---------------------------------------------

    def api(
        self, path: str, method: str = "GET", body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        argv = ["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method]
        if token:
            argv += ["-H", f"Authorization: Bearer {token}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        out = self.check(*argv, "--max-time", "10", API + path)
        text, _, status = out.rpartition("\n")
        with contextlib.suppress(ValueError):
            return int(status), json.loads(text)
        return int(status), text


def journal_json_lines(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """medic's JSON log lines among journal entries (the MESSAGE of each)."""
    lines = []
    for entry in entries:
        message = entry.get("MESSAGE")
        if isinstance(message, list):  # journald sends non-UTF-8 text as a byte array
            message = bytes(message).decode(errors="replace")
        if isinstance(message, str) and message.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(message))
    return lines


def owner_labels(test_label: str, owner_label: str) -> dict[str, str]:
    return {test_label: "1", owner_label: str(os.getpid()), "medic.test.role": "systemd"}
