"""How discovered containers are named, chosen and tied together, from what
the engine says of them (``ContainerInfo`` as ``docker inspect`` gives it)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from medic.config.models import Config, Playbook
from medic.host.docker import ContainerInfo
from medic.watch.discovery.docker_labels import DiscoverySettings, read_containers
from medic.watch.discovery.naming import compose_depends_on, service_names

RESTART = Playbook.model_validate(
    {"name": "restart-container", "steps": [{"action": "restart_container"}]}
)


def info(
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    cid: str | None = None,
    status: str = "running",
    network_mode: str = "bridge",
) -> ContainerInfo:
    return ContainerInfo(
        id=cid or f"{name}-id".ljust(64, "0"),
        name=name,
        labels=dict(labels or {}),
        status=status,
        network_mode=network_mode,
    )


def compose(project: str, service: str, number: int = 1, **more: str) -> dict[str, str]:
    return {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "medic.enable": "true",
        **more,
    }


def settings(
    docker: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
) -> DiscoverySettings:
    model = Config.model_validate({"docker": dict(docker or {"discover": "labeled"})})
    return DiscoverySettings.from_config(model, {"restart-container": RESTART}, env or {})


def test_the_name_is_medic_name_else_the_compose_service_else_the_container() -> None:
    containers = [
        info("shop_web_1", compose("shop", "web")),
        info("shop_web_2", compose("shop", "web", 2)),
        info("blog_db_1", compose("blog", "db")),
        info("shop_db_1", compose("shop", "db")),
        info("plain", {"medic.enable": "true"}),
        info("named", {**compose("shop", "cache"), "medic.name": "redis"}),
    ]
    names = service_names(containers)
    assert [names[c.id] for c in containers] == [
        "web",
        "web-2",
        "blog-db",  # two projects have a `db`: each takes its project as prefix
        "shop-db",
        "plain",
        "redis",
    ]


def test_compose_depends_on_is_read_in_compose_v2s_exact_format() -> None:
    value = "db:service_healthy:true,cache:service_started:false"
    assert compose_depends_on(value) == ["db", "cache"]
    assert compose_depends_on("") == []
    for bad in ("db", "db:service_started", "db:running:true", "db:service_started:maybe"):
        with pytest.raises(ValueError, match="is not service:condition:restart"):
            compose_depends_on(bad)


def test_dependencies_come_from_labels_compose_and_a_shared_network_namespace() -> None:
    vpn = info("p_vpn_1", compose("p", "vpn"))
    containers = [
        vpn,
        info("p_db_1", compose("p", "db")),
        info(
            "p_web_1",
            compose("p", "web", **{"com.docker.compose.depends_on": "db:service_started:false"}),
        ),
        info(
            "p_sidecar_1",
            compose("p", "sidecar", **{"medic.depends_on": "web"}),
            network_mode=f"container:{vpn.id}",
        ),
    ]
    found = read_containers(containers, settings())
    assert found.errors == ()
    assert found.services["web"].depends_on == ("db",)
    assert found.services["sidecar"].depends_on == ("web", "vpn")
    assert {s.source for s in found.services.values()} == {"docker"}
    assert found.services["sidecar"].container == "p_sidecar_1"


def test_a_bad_compose_depends_on_is_an_error_naming_that_label() -> None:
    bad = info("x", {"medic.enable": "true", "com.docker.compose.depends_on": "db"})
    found = read_containers([bad], settings())
    [error] = found.errors
    assert (error.container, error.label) == ("x", "com.docker.compose.depends_on")


def test_all_takes_every_container_but_those_labelled_enable_false() -> None:
    containers = [info("a"), info("b", {"medic.enable": "false"}), info("c", status="created")]
    found = read_containers(containers, settings({"discover": "all"}))
    assert set(found.services) == {"a"}, "b opted out; c has not started yet"
    assert set(read_containers(containers, settings()).services) == set(), "labeled: none"


def test_two_containers_asking_for_one_name_the_second_is_an_error() -> None:
    containers = [
        info("one", {"medic.enable": "true", "medic.name": "x"}),
        info("two", {"medic.enable": "true", "medic.name": "x"}),
    ]
    found = read_containers(containers, settings())
    assert found.services["x"].container == "one"
    [error] = found.errors
    assert (error.container, error.label) == ("two", "medic.name")


def test_autoheal_labels_watch_the_healthcheck_and_restart_when_unhealthy() -> None:
    healing = info("app", {"autoheal": "true", "autoheal.stop.timeout": "20"})
    containers = [healing, info("other")]
    assert read_containers(containers, settings({"discover": "off"})).services == {}
    found = read_containers(containers, settings({"autoheal_labels": True}))
    spec = found.services["app"]
    assert (spec.check.type, spec.failure_threshold, spec.stop_timeout_s) == ("container", 1, 20.0)
    assert spec.recovery == {"unhealthy_response": "restart-container"}
    assert set(found.services) == {"app"}
    everyone = settings({"autoheal_labels": True}, {"AUTOHEAL_CONTAINER_LABEL": "all"})
    assert everyone.mode == "all"
    assert set(read_containers(containers, everyone).services) == {"app", "other"}
    custom = settings({"autoheal_labels": True}, {"AUTOHEAL_CONTAINER_LABEL": "heal-me"})
    chosen = read_containers([info("x", {"heal-me": "true"}), healing], custom)
    assert set(chosen.services) == {"x"}


def test_a_dependency_cycle_leaves_one_of_its_containers_out_and_says_so() -> None:
    containers = [
        info("a", {"medic.enable": "true", "medic.depends_on": "b"}),
        info("b", {"medic.enable": "true", "medic.depends_on": "a"}),
        info("c", {"medic.enable": "true", "medic.depends_on": "a"}),
    ]
    found = read_containers(containers, settings())
    assert set(found.services) == {"b", "c"}
    [error] = found.errors
    assert (error.container, error.label) == ("a", "medic.depends_on")
    assert error.message == "dependency cycle: a -> b -> a"
