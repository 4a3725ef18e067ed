"""Docker label discovery on the real engine: containers labelled
``medic.enable=true`` become services at start and live, are healed like YAML
services, and go when they are removed; a bad label (or one that asks for a
host command) keeps only its own container out, and says which label and why;
a YAML service wins over a labelled container of the same name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medic.api.openapi import OPENAPI_PATH
from medic.config.load import load_config
from medic.orchestrator import ControlPlaneOrchestrator
from tests.apischema import response_schema, schema_errors
from tests.helpers import REPO_ROOT, free_port, wait_for
from tests.plugins.daemon import DaemonFactory
from tests.plugins.inprocess import BusWatch, OrchestratorFactory
from tests.plugins.labelled import LabelledFactory
from tests.test_validate_cli import medic_validate

PLAYBOOKS = REPO_ROOT / "recovery_playbooks"


def config(extra: str = "", *, services: str = "") -> str:
    return f"""
monitoring:
  health_check_interval: 1s
  timeout: 1s
  failure_threshold: 1
  recovery: {{max_attempts: 5, backoff: {{initial: 100ms}}}}
playbooks_dir: {PLAYBOOKS}
docker: {{discover: labeled}}
{extra}
services:
{services or "  {}"}
"""


def service(orch: ControlPlaneOrchestrator, name: str) -> dict[str, Any]:
    return orch.service_status(name)


async def test_labelled_containers_are_found_at_start_and_live_and_go_when_removed(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    web = labelled({"medic.enable": "true", "medic.name": "lbl-web"}, name="web")
    labelled({"medic.name": "not-enabled"}, name="other")  # no medic.enable: not a service
    orch = await orchestrator(config())
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service="lbl-web", new="healthy")
    state = service(orch, "lbl-web")
    assert (state["source"], state["container"], state["check_type"]) == (
        "docker",
        web.name,
        "container",
    )
    assert "not-enabled" not in orch.monitor.states()

    late = labelled(
        {"medic.enable": "true", "medic.name": "lbl-late", "medic.interval": "7s"}, name="late"
    )
    await events.next("service.state", service="lbl-late", new="healthy")
    assert service(orch, "lbl-late")["interval_seconds"] == 7.0

    late.container.remove(force=True)
    await events.next("discovery.changed", removed=["lbl-late"])
    assert "lbl-late" not in orch.monitor.states()
    assert orch.store.uptime_percentage("lbl-late", 3600) is not None, "its history stays"


async def test_a_labelled_container_that_crashes_is_healed(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    web = labelled(
        {
            "medic.enable": "true",
            "medic.name": "crashy",
            "medic.recovery.service_crash": "restart-container",
        },
        name="crashy",
    )
    orch = await orchestrator(config())
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service="crashy", new="healthy")
    web.kill_process()
    done = await events.next("recovery.succeeded", service="crashy")
    assert done.data["playbook"] == "restart-container"
    web.wait_status("running")


async def test_a_bad_label_keeps_only_its_container_out_and_names_the_label(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    good = labelled({"medic.enable": "true", "medic.name": "good"}, name="good")
    bad = labelled(
        {"medic.enable": "true", "medic.name": "bad", "medic.interval": "soon"}, name="bad"
    )
    orch = await orchestrator(config())
    events = BusWatch(orch.bus, after=0)
    error = await events.next("discovery.error", container=bad.name)
    assert error.data["label"] == "medic.interval"
    assert "invalid duration 'soon'" in error.data["message"]
    await events.next("service.state", service="good", new="healthy")
    assert "bad" not in orch.monitor.states()
    assert {"container": bad.name, "label": "medic.interval"}.items() <= (
        orch.discovery_errors()[0].items()
    )
    assert good.status == "running"


async def test_labels_that_would_run_host_commands_are_refused(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    tries = {
        "check": {"medic.check.type": "command", "medic.check.command": f"touch,{marker}"},
        "start": {"medic.start_command": f"touch,{marker}"},
        "process": {"medic.process.command": f"touch,{marker}"},
        "unit": {"medic.unit": "ssh.service"},
        "hook": {"medic.recovery.service_crash": "disk-full"},  # runs journalctl on the host
        "post": {
            "medic.check.type": "http",
            "medic.check.url": "http://127.0.0.1:2375/containers/x/start",
            "medic.check.method": "POST",
        },
    }
    made = {
        key: labelled({"medic.enable": "true", "medic.name": key, **labels}, name=key)
        for key, labels in tries.items()
    }
    orch = await orchestrator(config())
    events = BusWatch(orch.bus, after=0)
    seen = [(await events.next("discovery.error")).data for _ in made]
    refused = {key: next(e for e in seen if e["container"] == h.name) for key, h in made.items()}
    assert refused["check"]["label"] == "medic.check.type"
    assert "runs a command on the host" in refused["check"]["message"]
    assert refused["start"]["label"] == "medic.start_command"
    assert refused["process"]["label"] == "medic.process"
    assert refused["unit"]["label"] == "medic.unit"
    assert refused["hook"]["label"] == "medic.recovery.service_crash"
    assert "acts on the host (run_command)" in refused["hook"]["message"]
    assert refused["post"]["label"] == "medic.check.method"
    assert not set(tries) & set(orch.monitor.states())
    assert not marker.exists()


async def test_a_yaml_service_wins_over_a_labelled_container_of_its_name(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    labelled({"medic.enable": "true", "medic.name": "shared", "medic.interval": "3s"}, name="s")
    yaml_service = f"  shared:\n    check: {{type: tcp, port: {free_port()}}}\n    interval: 30s"
    orch = await orchestrator(config(services=yaml_service))
    events = BusWatch(orch.bus, after=0)
    labelled({"medic.enable": "true", "medic.name": "other"}, name="o")
    await events.next("service.state", service="other", new="healthy")
    state = service(orch, "shared")
    assert (state["source"], state["check_type"], state["interval_seconds"]) == (
        "yaml",
        "tcp",
        30.0,
    )


def test_medic_validate_asks_the_engine_and_names_each_bad_label(
    labelled: LabelledFactory, tmp_path: Path
) -> None:
    bad = labelled(
        {"medic.enable": "true", "medic.name": "v-bad", "medic.check.type": "command"},
        name="vbad",
    )
    labelled({"medic.enable": "true", "medic.name": "v-good"}, name="vgood")
    path = tmp_path / "config.yaml"
    path.write_text(config())
    done = medic_validate("--config", str(path))
    assert done.returncode == 1, done.stderr
    assert f"docker:{bad.name}: medic.check.type: a `command` check runs" in done.stderr
    bad.container.remove(force=True)
    done = medic_validate("--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "discovered from container labels" in done.stdout


async def test_when_the_event_stream_comes_back_the_containers_are_read_again(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    gone = labelled({"medic.enable": "true", "medic.name": "gone-meanwhile"}, name="gone")
    orch = await orchestrator(config())
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service="gone-meanwhile", new="healthy")
    await orch.docker_events.stop()  # the engine (its event stream) is away
    gone.container.remove(force=True)
    labelled({"medic.enable": "true", "medic.name": "came-meanwhile"}, name="came")
    await events.none("discovery.changed", within=1.0)
    assert "came-meanwhile" not in orch.monitor.states()
    orch.docker_events.start()  # back: what happened meanwhile is read from the list
    changed = await events.next("discovery.changed")
    assert (changed.data["added"], changed.data["removed"]) == (
        ["came-meanwhile"],
        ["gone-meanwhile"],
    )
    await events.next("service.state", service="came-meanwhile", new="healthy")


async def test_a_reload_keeps_the_discovered_services_and_a_new_yaml_name_wins(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    labelled({"medic.enable": "true", "medic.name": "kept"}, name="kept")
    labelled({"medic.enable": "true", "medic.name": "taken"}, name="taken")
    orch = await orchestrator(config())
    events = BusWatch(orch.bus, after=0)
    for _ in range(2):
        await events.next("service.state", new="healthy")
    assert service(orch, "taken")["source"] == "docker"
    yaml_service = f"  taken:\n    check: {{type: tcp, port: {free_port()}}}"
    orchestrator.config_path.write_text(config(services=yaml_service))
    changes = await orch.reload(
        load_config(orchestrator.config_path, state_dir=orch.config.state_dir)
    )
    assert changes["services"]["changed"] == ["taken"]
    assert (service(orch, "taken")["source"], service(orch, "kept")["source"]) == ("yaml", "docker")
    orchestrator.config_path.write_text(config())
    await orch.reload(load_config(orchestrator.config_path, state_dir=orch.config.state_dir))
    assert service(orch, "taken")["source"] == "docker", "the container's own service is back"


def test_the_api_lists_the_bad_label_and_each_services_source_as_documented(
    medic_daemon: DaemonFactory, labelled: LabelledFactory
) -> None:
    bad = labelled(
        {"medic.enable": "true", "medic.name": "api-bad", "medic.check.type": "command"},
        name="apibad",
    )
    labelled({"medic.enable": "true", "medic.name": "api-good"}, name="apigood")
    yaml_service = f"  local:\n    check: {{type: tcp, port: {free_port()}}}"
    daemon = medic_daemon(
        f"api: {{listen: 127.0.0.1:{free_port()}}}\n" + config(services=yaml_service)
    )

    def listed() -> dict[str, Any] | None:
        status, body = daemon.get("/api/v1/services")
        names = {s["name"] for s in body["services"]} if status == 200 else set()
        return body if "api-good" in names and body["discovery_errors"] else None

    body = wait_for(listed, 20, interval=0.1, message="api-good listed, api-bad refused")
    sources = {s["name"]: s["source"] for s in body["services"]}
    assert (sources["api-good"], sources["local"]) == ("docker", "yaml")
    assert "api-bad" not in sources
    [error] = [e for e in body["discovery_errors"] if e["container"] == bad.name]
    assert error["label"] == "medic.check.type"
    _, document = daemon.get(OPENAPI_PATH)
    schema = response_schema(document, "GET", "/api/v1/services", 200)
    assert schema_errors(document, schema, body) == []


async def test_discover_all_takes_every_container_but_those_that_opt_out(
    orchestrator: OrchestratorFactory, labelled: LabelledFactory
) -> None:
    # A dry run: on this shared engine, `all` also finds other people's containers.
    unlabelled = labelled({}, name="bare", publish=False)
    opted_out = labelled({"medic.enable": "false"}, name="optout", publish=False)
    orch = await orchestrator(
        config().replace("{discover: labeled}", "{discover: all}"), dry_run=True
    )
    events = BusWatch(orch.bus, after=0)
    await events.next("service.state", service=unlabelled.name, new="healthy")
    state = service(orch, unlabelled.name)
    assert (state["source"], state["container"]) == ("docker", unlabelled.name)
    assert opted_out.name not in orch.monitor.states()
