"""Bad clients of the API never stop medic's work: 200 slow or half-open
connections and very large headers leave checks on their interval (counted in
/metrics); event streams are capped by ``api.max_event_clients`` (one more is
answered 503 with a JSON error); a client that never reads does not hold up
the others' events, and one that stops reading is dropped after
``api.event_client_write_timeout``."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from medic.core.bus import EventBus
from tests.helpers import free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.test_daemon_lifecycle import minimal_config

SLOW_CLIENTS = 200
INTERVAL_S = 0.2
RELOADS = 60


def checks_done(daemon: DaemonProcess, service: str) -> float:
    _, text = daemon.get("/metrics?name[]=medic_check_duration_seconds_count")
    pattern = rf'medic_check_duration_seconds_count\{{[^}}]*service="{service}"[^}}]*\}} (\S+)'
    match = re.search(pattern, str(text))
    assert match, text
    return float(match[1])


@contextmanager
def slow_clients(port: int, count: int, stop: threading.Event) -> Iterator[list[socket.socket]]:
    """``count`` connections that send a request header one byte a second, never finishing."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    header = b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000

    def drip() -> None:
        for byte in header:
            if stop.wait(1.0):
                return
            for sock in socks:
                # Closed by the server: what it should do, in time.
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        yield socks
    finally:
        stop.set()
        thread.join(5)
        for sock in socks:
            sock.close()


def huge_header_request(port: int, size: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * size + b"\r\n\r\n"
        )
        try:
            return sock.recv(200)
        except OSError:
            return b""


def test_slow_connections_and_huge_headers_do_not_stop_checks(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    config = minimal_config(free_port(), listening_port).replace(
        "health_check_interval: 1s", f"health_check_interval: {INTERVAL_S}s"
    )
    daemon = medic_daemon(config)
    stop = threading.Event()
    with slow_clients(daemon.port, SLOW_CLIENTS, stop):
        before, started = checks_done(daemon, "target"), time.monotonic()
        for size in (64 * 1024, 1024 * 1024):
            answer = huge_header_request(daemon.port, size)
            assert answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer
        time.sleep(4.0)
        assert daemon.get("/api/v1/health", timeout=2)[0] == 200
        done = checks_done(daemon, "target") - before
        elapsed = time.monotonic() - started
    # On its interval: at least 60% of the checks due (the machine is shared).
    assert done >= 0.6 * elapsed / INTERVAL_S, (done, elapsed)
    assert daemon.running


def test_half_open_connections_are_closed_after_the_idle_timeout(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    daemon = medic_daemon(minimal_config(free_port(), listening_port))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by medic
        waited = time.monotonic() - started
    assert waited < 25, waited


def open_stream(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:  # before connecting, so the window it offers stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def read_until(sock: socket.socket, needle: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        seen += chunk
    return seen


def test_event_streams_are_capped_and_a_stuck_reader_holds_up_nobody(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    port = free_port()
    config = minimal_config(port, listening_port).replace(
        f"api: {{listen: 127.0.0.1:{port}}}",
        f"api: {{listen: 127.0.0.1:{port}, max_event_clients: 3, token_env: T}}",
    )
    daemon = medic_daemon(config, env={"T": "t0ken"})
    with ExitStack() as stack:
        stuck = open_stream(daemon.port, rcvbuf=4096)  # never reads a byte
        stack.callback(lambda: stuck and stuck.close())
        readers = [open_stream(daemon.port) for _ in range(2)]
        for reader in readers:
            stack.callback(reader.close)
            assert b": connected" in read_until(reader, b": connected", 10)
        status, body = daemon.get("/api/v1/events", timeout=5)
        assert status == 503 and body["error"]["code"] == "TOO_MANY_EVENT_CLIENTS", body
        # Many events (each reload publishes one) while one client reads nothing.
        for _ in range(RELOADS):
            assert daemon.post("/api/v1/reload", token="t0ken")[0] == 200
        for reader in readers:
            got = b""
            deadline = time.monotonic() + 15
            while got.count(b"event: config.reloaded") < RELOADS and time.monotonic() < deadline:
                got += read_until(reader, b"event: config.reloaded", 1)
            assert got.count(b"event: config.reloaded") == RELOADS
        assert daemon.get("/api/v1/health", timeout=2)[0] == 200
    # Once they are gone, there is room again.

    def slot_free() -> bool:
        with open_stream(daemon.port) as sock:
            return b": connected" in read_until(sock, b": connected", 2)

    wait_for(slot_free, 10, message="the closed streams' slots are free again")


async def test_a_subscriber_that_never_reads_never_blocks_publishing() -> None:
    bus = EventBus()
    stuck = bus.subscribe(maxsize=10)
    reader = bus.subscribe(maxsize=10_000)
    for n in range(5_000):
        bus.publish("service.state", n=n)  # synchronous: it cannot wait for anyone
    assert reader.qsize() == 5_000
    assert stuck.qsize() == 10
    assert stuck.get_nowait().data["n"] == 4_990  # it lost its oldest, nothing else did


def many_services(port: int, count: int) -> str:
    """``count`` services with long names (checked once a minute, on ``port``:
    one that accepts): a reload that adds or removes them all publishes an
    event of about ``count`` * 200 bytes."""
    return "".join(
        f"  svc-{'x' * 190}-{n}:\n    check: {{type: tcp, port: {port}}}\n    interval: 60s\n"
        for n in range(count)
    )


def test_a_client_that_stops_reading_is_dropped_and_the_others_go_on(
    medic_daemon: DaemonFactory, listening_port: int
) -> None:
    port = free_port()
    base = minimal_config(port, listening_port).replace(
        "health_check_interval: 1s", f"health_check_interval: {INTERVAL_S}s"
    )
    timeout = f"api: {{listen: 127.0.0.1:{port}, token_env: T, event_client_write_timeout: 4s}}"
    small = base.replace(f"api: {{listen: 127.0.0.1:{port}}}", timeout)
    large = small + many_services(port, 300)  # medic's own API accepts them
    daemon = medic_daemon(small, env={"T": "t0ken"})
    with ExitStack() as stack:
        stuck = open_stream(daemon.port, rcvbuf=2048)  # never reads a byte
        stack.callback(stuck.close)
        reader = open_stream(daemon.port)
        stack.callback(reader.close)
        assert b": connected" in read_until(reader, b": connected", 10)
        # Reloads that add and remove 300 long-named services: ~60 KB an event,
        # far more than the stuck client's buffers and the server's send buffer hold.
        got = b""
        for n in range(RELOADS):
            daemon.write_config(large if n % 2 == 0 else small)
            assert daemon.post("/api/v1/reload", token="t0ken")[0] == 200
            got += read_until(reader, b"event: config.reloaded", 0.1)
        # The stuck stream's write now waits; meanwhile checks keep their pace.
        before, started = checks_done(daemon, "target"), time.monotonic()
        # ...and the client that reads gets every event.
        deadline = time.monotonic() + 15
        while got.count(b"event: config.reloaded") < RELOADS and time.monotonic() < deadline:
            got += read_until(reader, b"event: config.reloaded", 1)
        assert got.count(b"event: config.reloaded") == RELOADS
        time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        done, elapsed = checks_done(daemon, "target") - before, time.monotonic() - started
        assert done >= 0.5 * elapsed / INTERVAL_S, (done, elapsed)
        # The one that reads nothing is dropped by the server once a write has
        # waited 4 s. The kernel may still take more of it (its send buffer
        # grows to megabytes): big events go on until one such write waits.
        drop_deadline, n = time.monotonic() + 60, 0
        while not daemon.find_logs(event="api.event_client_dropped"):
            assert time.monotonic() < drop_deadline, "the stuck client was never dropped"
            daemon.write_config(large if n % 2 == 0 else small)
            assert daemon.post("/api/v1/reload", token="t0ken")[0] == 200
            n += 1
            drain(reader, 0.2)  # the reader keeps reading: it must not be dropped too
        (dropped,) = daemon.find_logs(event="api.event_client_dropped")
        assert dropped["peer"] == "127.0.0.1"
        # Its socket ends (EOF or a reset) once it has drained what the kernel had taken.
        assert stream_ends(stuck, 20), "the stuck client's stream never ended"
        assert daemon.get("/api/v1/health", timeout=2)[0] == 200
        assert not daemon.find_logs(event="check.crashed")
        # The reader is still served after the other was dropped.
        assert daemon.post("/api/v1/reload", token="t0ken")[0] == 200
        assert b"event: config.reloaded" in read_until(reader, b"event: config.reloaded", 5)


def drain(sock: socket.socket, seconds: float) -> None:
    """Read whatever arrives for ``seconds``."""
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return


def stream_ends(sock: socket.socket, timeout: float) -> bool:
    """Read what is left; True when the server closed (EOF or reset) within ``timeout``."""
    deadline = time.monotonic() + timeout
    sock.settimeout(1)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False
