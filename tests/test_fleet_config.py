"""The ``fleet:`` section: defaults, every mistake named with file:line:key, and
etcd authentication (username, password from the environment) against a real cluster."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from medic.config.load import load_config
from medic.core.errors import ConfigInvalid
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory
from tests.plugins.etcd import EtcdCluster

GOOD = """
services:
  db:
    check: {type: tcp, port: 5432}
    shared: true
fleet:
  etcd:
    endpoints: ["127.0.0.1:2379", "http://10.0.0.2:2379"]
    username: medic
    password_env: ETCD_PASSWORD
  group: eu-1
"""


E = "  etcd: {endpoints: ['a:1']}\n"


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, state_dir=tmp_path / "state")


def test_a_fleet_section_gets_its_defaults(tmp_path: Path) -> None:
    loaded = load(tmp_path, GOOD)
    fleet = loaded.model.fleet  # type: ignore[attr-defined]
    assert fleet.host == socket.gethostname()
    assert fleet.group == "eu-1"
    assert fleet.lease_ttl == 10.0
    assert fleet.disruptive_concurrency == 1
    assert fleet.etcd.prefix == "/medic"
    assert loaded.services["db"].shared  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("section", "line", "where", "says"),
    [
        ("  etcd: {endpoints: [nohost]}\n", 3, "fleet.etcd.endpoints", "HOST:PORT"),
        ("  etcd: {endpoints: []}\n", 3, "fleet.etcd.endpoints", "at least 1"),
        ("  etcd: {endpoints: ['a:1'], prefix: medic}\n", 3, "fleet.etcd.prefix", "start with /"),
        ("  etcd: {endpoints: ['a:1'], cert_file: c.pem}\n", 3, "fleet.etcd", "key_file"),
        ("  etcd: {endpoints: ['a:1'], username: u}\n", 3, "fleet.etcd", "password_env"),
        ("  etcd: {endpoints: ['a:1']}\n  lease_ttl: 1s\n", 4, "fleet.lease_ttl", "2"),
        ("  etcd: {endpoints: ['a:1']}\n  host: 'web 01'\n", 4, "fleet.host", "letters"),
        (E + "  disruptive_concurrency: 0\n", 4, "fleet.disruptive_concurrency", "1"),
        (E + "  max_failing_hosts_fraction: 2\n", 4, "fleet.max_failing_hosts_fraction", "1"),
        ("  etcd: {endpoints: ['a:1']}\n  grup: x\n", 4, "fleet.grup", "group"),
    ],
)  # fmt: skip
def test_a_mistake_is_named_with_file_line_and_key(
    tmp_path: Path, section: str, line: int, where: str, says: str
) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, "services: {}\nfleet:\n" + section)
    text = "\n".join(str(issue) for issue in caught.value.issues)
    assert f"config.yaml:{line}: {where}" in text, text
    assert says in text, text


def test_a_fleet_with_etcd_auth_connects_with_the_password_from_the_environment(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    for args in (
        ("user", "add", "root:rootpw"),
        ("user", "add", "medic:medicpw"),
        ("role", "add", "medic"),
        ("role", "grant-permission", "medic", "--prefix=true", "readwrite", "/medic-auth/"),
        ("user", "grant-role", "medic", "medic"),
        ("auth", "enable"),
    ):
        done = etcd_cluster.ctl(*args)
        assert done.returncode == 0, (args, done.stderr)
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
fleet:
  etcd:
    endpoints: {json.dumps(etcd_cluster.endpoints)}
    prefix: /medic-auth
    username: medic
    password_env: ETCD_PASSWORD
  host: auth-host
services: {{}}
"""
    daemon = medic_daemon(config, env={"ETCD_PASSWORD": "medicpw"})
    wait_for(lambda: daemon.get("/api/v1/fleet")[1]["connected"], timeout=15)
    hosts = daemon.get("/api/v1/fleet")[1]["hosts"]
    assert [h["host"] for h in hosts] == ["auth-host"]
    daemon.stop()
    wrong = medic_daemon(config, env={"ETCD_PASSWORD": "nope"})
    wait_for(
        lambda: "authentication failed" in wrong.log_path.read_text(),
        timeout=15,
        message="a wrong password is refused by etcd and logged",
    )
    assert wrong.get("/api/v1/fleet")[1]["connected"] is False


def test_a_dead_first_endpoint_is_passed_over_for_the_next(
    etcd_cluster: EtcdCluster, medic_daemon: DaemonFactory
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
fleet:
  etcd: {{endpoints: {json.dumps([dead, *etcd_cluster.endpoints])}, prefix: /medic-failover}}
  host: failover-host
services: {{}}
"""
    daemon = medic_daemon(config)
    view = wait_for(lambda: (v := daemon.get("/api/v1/fleet")[1])["connected"] and v, timeout=15)
    assert view["endpoint"] == etcd_cluster.endpoints[0]
    assert dead in daemon.log_path.read_text()  # fleet.endpoint_failed names it
