"""The commands operators know from supervisorctl and systemctl, run as an
operator runs them (a subprocess against a real daemon): ``status`` exit
codes, ``reload``, ``history``, ``logs`` of a process and of a container,
bash completion generated from the parser, ``run --listen`` (and
``scripts/run.sh`` saying where it listens), disabled services listed, and a
did-you-mean for a misspelt service."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory
from tests.test_cli_client import TOKEN, run_cli


def services(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in daemon.get("/api/v1/services")[1]["services"]}


def test_status_exits_0_when_all_are_healthy_and_lists_a_disabled_service(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    yaml = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 300ms}}
services:
  web:
    check: {{type: tcp, host: 127.0.0.1, port: {listening_port}}}
  legacy:
    enabled: false
    check: {{type: tcp, host: 127.0.0.1, port: {free_port()}}}
"""
    daemon = medic_daemon(yaml, env={"MEDIC_API_TOKEN": TOKEN})
    wait_for(lambda: services(daemon)["web"]["status"] == "healthy", 10)
    assert services(daemon)["legacy"]["status"] == "disabled"
    assert daemon.get("/api/v1/services/legacy")[1]["status"] == "disabled"
    assert daemon.get("/api/v1/status")[1]["health_status"]["legacy"]["status"] == "disabled"
    status = run_cli("status", "--url", daemon.url)
    assert status.returncode == 0, status.stdout + status.stderr
    assert any(line.split()[:2] == ["legacy", "disabled"] for line in status.stdout.splitlines())
    assert run_cli("status", "--json", "--url", daemon.url).returncode == 0

    typo = run_cli("check", "wbe", "--url", daemon.url, env={"MEDIC_API_TOKEN": TOKEN})
    assert typo.returncode == 1
    assert "no service named 'wbe' (did you mean 'web'?)" in typo.stderr

    daemon.write_config(yaml.replace("legacy:\n    enabled: false", "legacy:\n    enabled: true"))
    reload = run_cli("reload", "--url", daemon.url, env={"MEDIC_API_TOKEN": TOKEN})
    assert reload.returncode == 0, reload.stderr
    assert "config reloaded" in reload.stdout and "legacy" in reload.stdout
    wait_for(lambda: services(daemon)["legacy"]["status"] == "unhealthy", 10)
    assert run_cli("status", "--url", daemon.url).returncode == 3


def test_logs_of_a_process_service_tail_and_follow(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    script = "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done"
    yaml = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
services:
  ticker:
    check: {{type: process}}
    process: {{command: [sh, -c, "{script}"]}}
"""
    daemon = medic_daemon(yaml)
    wait_for(lambda: "tick-3" in (run_cli("logs", "ticker", "--url", daemon.url).stdout), 10)
    last = run_cli("logs", "ticker", "-n", "1", "--url", daemon.url)
    assert last.returncode == 0 and len(last.stdout.splitlines()) == 1
    first = int(last.stdout.strip().removeprefix("tick-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["PYTHONPATH"] = str(REPO_ROOT / "daemon")
    follow = subprocess.Popen(
        [sys.executable, "-m", "medic", "logs", "ticker", "-f", "-n", "1", "--url", daemon.url],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert follow.stdout is not None
        seen = [follow.stdout.readline().strip() for _ in range(3)]
        numbers = [int(line.removeprefix("tick-")) for line in seen]
        assert numbers[0] >= first and numbers == sorted(numbers) and numbers[2] > first
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 0


def test_logs_history_and_completion_of_a_container_service(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, idle_container: Any
) -> None:
    web = container_factory(name="logs", command="echo hello-from-container; sleep 1000")
    yaml = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 300ms, failure_threshold: 1}}
playbooks_dir: {REPO_ROOT / "recovery_playbooks"}
services:
  web:
    check: {{type: container}}
    container: {web.name}
"""
    daemon = medic_daemon(yaml, env={"MEDIC_API_TOKEN": TOKEN})
    logs = run_cli("logs", "web", "-n", "5", "--url", daemon.url)
    assert logs.returncode == 0, logs.stderr
    assert "hello-from-container" in logs.stdout

    empty = run_cli("history", "--url", daemon.url)
    assert empty.returncode == 0 and "(none)" in empty.stdout
    web.kill_process()
    wait_for(lambda: daemon.get("/api/v1/recoveries")[1]["total"] == 1, 20)
    wait_for(
        lambda: daemon.get("/api/v1/recoveries")[1]["recoveries"][0]["outcome"] != "running", 20
    )
    history = run_cli("history", "web", "--url", daemon.url)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines[0].split() == ["STARTED", "SERVICE", "FAILURE", "PLAYBOOK", "OUTCOME", "SECONDS"]
    row = lines[1].split()
    assert row[2:5] == ["web", "service_crash", "restart-container"] and row[5] == "succeeded"
    assert float(row[6]) > 0

    # Completion: commands, a command's options and choices, service names from the daemon.
    assert complete(daemon, "medic", "pa") == ["pause"]
    assert "--for" in complete(daemon, "medic", "pause", "--")
    assert complete(daemon, "medic", "run", "--log-format", "c") == ["console"]
    assert complete(daemon, "medic", "logs", "w") == ["web"]


def complete(daemon: DaemonProcess, *words: str) -> list[str]:
    """What bash completes for ``words`` (the last is being typed) with the script
    ``medic completion bash`` prints, ``medic`` being this checkout against ``daemon``."""
    script = run_cli("completion", "bash").stdout
    medic = f'medic() {{ {sys.executable} -m medic "$@" --url {daemon.url}; }}'
    words_text = " ".join(f"'{w}'" for w in words)
    program = (
        f"{medic}\n{script}\nCOMP_WORDS=({words_text}); COMP_CWORD={len(words) - 1}\n"
        '_medic; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["PYTHONPATH"] = str(REPO_ROOT / "daemon")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return sorted(line for line in done.stdout.splitlines() if line)


def test_help_has_examples() -> None:
    assert "examples:" in run_cli("--help").stdout
    assert "medic pause web --for 30m" in run_cli("pause", "--help").stdout


def test_run_listen_overrides_the_config_and_the_self_check_follows(
    medic_daemon: DaemonFactory,
) -> None:
    configured, port = free_port(), free_port()
    yaml = f"""
api: {{listen: 127.0.0.1:{configured}}}
monitoring: {{health_check_interval: 300ms}}
services:
  medic-api:
    check: {{type: http, url: "http://127.0.0.1:{configured}/api/v1/health"}}
"""
    daemon = medic_daemon(
        yaml, listen=f"127.0.0.1:{port}", extra_args=["--listen", f"127.0.0.1:{port}"]
    )
    wait_for(lambda: services(daemon)["medic-api"]["status"] == "healthy", 10)
    bad = run_cli("run", "--listen", "nowhere")
    assert bad.returncode == 2 and "must be HOST:PORT" in bad.stderr


def test_run_sh_prints_the_address_it_really_listens_on(tmp_path: Path) -> None:
    for part in ("control-plane", "recovery_playbooks"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part)
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "run.sh", tmp_path / "scripts" / "run.sh")
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    # A stand-in for the venv run.sh makes: this checkout on the test's Python.
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv / "medic").write_text(f'#!/bin/sh\nexec {sys.executable} -m medic "$@"\n')
    for tool in ("python", "medic"):
        (venv / tool).chmod(0o755)
    (tmp_path / ".venv" / ".medic-installed").touch()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["PYTHONPATH"] = str(REPO_ROOT / "daemon")
    proc = subprocess.Popen(
        ["bash", "scripts/run.sh", "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        said = ""
        while "status page and API" not in said:
            line = proc.stderr.readline()
            assert line, said
            said += line
        assert f"status page and API on http://127.0.0.1:{port}/ (Ctrl-C stops)" in said
        # It does listen there, and the default config's self-check follows.
        wait_for(lambda: _status_of(port, "medic-api") == "healthy", 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _status_of(port: int, service: str) -> str | None:
    url = f"http://127.0.0.1:{port}/api/v1/services/{service}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(json.load(answer)["status"])
    except OSError:
        return None
