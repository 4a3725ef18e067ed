"""``fleet.etcd`` over TLS: a real etcd member serving https with a
certificate from a throw-away CA (openssl), and a medic that trusts the CA
(``ca_file``) and shows a client certificate (``cert_file``, ``key_file``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    """ca.pem, server.pem/server-key.pem (IP 127.0.0.1), client.pem/client-key.pem."""
    ca = ("-subj", "/CN=medic-test-ca", "-keyout", "ca-key.pem", "-out", "ca.pem")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *ca, cwd=d)
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=d)  # fmt: skip


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    port, peer = free_port(), free_port()
    cmd = [
        ETCD, "--name", "tls", "--data-dir", str(tmp_path / "etcd-tls"),
        "--listen-client-urls", f"https://127.0.0.1:{port}",
        "--advertise-client-urls", f"https://127.0.0.1:{port}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"tls=http://127.0.0.1:{peer}",
        "--cert-file", str(pki / "server.pem"), "--key-file", str(pki / "server-key.pem"),
        "--trusted-ca-file", str(pki / "ca.pem"), "--client-cert-auth",
    ]  # fmt: skip
    with (tmp_path / "etcd-tls.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"127.0.0.1:{port}", pki
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_medic_joins_an_etcd_that_serves_tls_and_asks_for_client_certificates(
    tls_etcd: tuple[str, Path], medic_daemon: DaemonFactory
) -> None:
    endpoint, pki = tls_etcd
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
fleet:
  etcd:
    endpoints: {json.dumps([endpoint])}
    ca_file: {pki / "ca.pem"}
    cert_file: {pki / "client.pem"}
    key_file: {pki / "client-key.pem"}
  host: tls-host
services: {{}}
"""
    daemon = medic_daemon(config)
    wait_for(lambda: daemon.get("/api/v1/fleet")[1]["connected"], timeout=20)
    assert [h["host"] for h in daemon.get("/api/v1/fleet")[1]["hosts"]] == ["tls-host"]
