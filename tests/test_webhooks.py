"""Webhook notifications against a real receiver on 127.0.0.1 that checks the
HMAC signature over the raw body: filtering, retries with backoff, no retry
on 4xx, the bounded queue, flushing at stop, reloads; and end to end, medic
healing a real container while the receiver is down, then delivering once it
is back."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medic.config.models import NotificationsConfig
from medic.core.bus import EventBus
from medic.core.redact import SecretValues
from medic.core.vocabulary import FailureType
from medic.host.resources import Resources
from medic.tell.metrics import Metrics
from medic.tell.webhooks import WebhookDispatcher, event_matches, retry_delay
from tests.helpers import async_wait_for, free_port, wait_for
from tests.plugins.daemon import DaemonFactory, DaemonProcess
from tests.plugins.docker import ContainerFactory, ContainerHandle
from tests.test_heal_container import REPO_PLAYBOOKS, finished_recoveries, wait_service
from tests.webhook_receiver import Receiver, running_receiver

SECRET = "s3cret-for-tests"
FAST_BACKOFF = {"initial": "50ms", "factor": 2, "max": "200ms", "jitter": 0}


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Harness:
    """A dispatcher on a real bus, posting with the daemon's own HTTP session."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.bus = EventBus()
        self.metrics = Metrics()
        self.dispatcher: WebhookDispatcher | None = None

    def start(
        self, *hooks: dict[str, Any], queue_size: int = 1000, secrets: SecretValues | None = None
    ) -> WebhookDispatcher:
        config = NotificationsConfig.model_validate({"webhooks": hooks, "queue_size": queue_size})
        self.dispatcher = WebhookDispatcher(
            config, session=lambda: self.resources.http, metrics=self.metrics, secrets=secrets
        )
        self.bus.add_listener(self.dispatcher)
        self.dispatcher.start()
        return self.dispatcher

    def count(self, webhook: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "medic_webhook_deliveries_total", {"webhook": webhook, "outcome": outcome}
        )
        return value or 0.0

    async def counted(self, webhook: str, outcome: str, at_least: float = 1) -> float:
        return await async_wait_for(
            lambda: self.count(webhook, outcome) >= at_least and self.count(webhook, outcome),
            10,
            message=f"{webhook}: {at_least} x {outcome}",
        )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    resources = Resources()
    made = Harness(resources)
    yield made
    if made.dispatcher is not None:
        await made.dispatcher.stop(flush_s=0)
    await resources.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver(secret=SECRET) as rec:
        yield rec


def hook(receiver: Receiver | None = None, name: str = "ops", **options: Any) -> dict[str, Any]:
    url = receiver.url() if receiver is not None else f"http://127.0.0.1:{free_port()}/hook"
    return {"name": name, "url": url, "backoff": FAST_BACKOFF, **options}


# the body, the signature, the filter -------------------------------------------------


async def test_signed_event_reaches_the_receiver(
    harness: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    harness.start(hook(receiver, secret_env="TEST_HOOK_SECRET", headers={"X-Team": "sre"}))
    event = harness.bus.publish(
        "recovery.failed", service="web", failure_type=FailureType.SERVICE_CRASH, detail="gone"
    )
    (delivery,) = await receiver.arrival("recovery.failed")
    assert delivery.signature_ok is True
    assert delivery.json == {
        "event": "recovery.failed",
        "timestamp": event.timestamp,
        "id": event.id,
        "host": socket.gethostname(),
        "data": {"service": "web", "failure_type": "service_crash", "detail": "gone"},
    }
    assert delivery.headers["X-Medic-Event"] == "recovery.failed"
    assert delivery.headers["X-Medic-Attempt"] == "1"
    assert delivery.headers["X-Team"] == "sre"
    assert delivery.headers["Content-Type"] == "application/json"
    assert await harness.counted("ops", "delivered") == 1


async def test_known_secret_values_are_masked_in_the_body_before_signing(
    harness: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    secrets = SecretValues()
    secrets.replace(["db-pass-0042", "short"])
    harness.start(hook(receiver, secret_env="TEST_HOOK_SECRET"), secrets=secrets)
    harness.bus.publish("recovery.failed", service="web", detail="psql: pw db-pass-0042 short")
    (delivery,) = await receiver.arrival("recovery.failed")
    assert delivery.signature_ok is True  # signed as sent, masked
    assert delivery.json["data"]["detail"] == "psql: pw *** short"  # 5 chars: not masked


async def test_no_secret_no_signature(harness: Harness) -> None:
    with running_receiver() as plain:
        harness.start(hook(plain))
        harness.bus.publish("service.unhealthy", service="web")
        (delivery,) = await plain.arrival("service.unhealthy")
    assert "X-Medic-Signature" not in delivery.headers


async def test_secret_file_is_read_at_send_time(
    harness: Harness, receiver: Receiver, tmp_path: Path
) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text("first-secret\n")
    harness.start(hook(receiver, secret_file=str(secret_file)))
    harness.bus.publish("service.unhealthy", service="web")
    (first,) = await receiver.arrival("service.unhealthy")
    secret_file.write_text("rotated-secret\n")
    harness.bus.publish("service.recovered", service="web")
    (second,) = await receiver.arrival("service.recovered")
    assert first.headers["X-Medic-Signature"] == signature("first-secret", first.body)
    assert second.headers["X-Medic-Signature"] == signature("rotated-secret", second.body)


async def test_an_unreadable_secret_is_never_sent_unsigned(
    harness: Harness, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_HOOK_SECRET", raising=False)
    harness.start(hook(receiver, secret_env="TEST_HOOK_SECRET"))
    harness.bus.publish("service.unhealthy", service="web")
    await harness.counted("ops", "failed")
    assert harness.count("ops", "retried") == 0
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    harness.bus.publish("service.recovered", service="web")
    (delivery,) = await receiver.arrival("service.recovered")
    assert delivery.signature_ok is True
    assert receiver.received("service.unhealthy") == []


@pytest.mark.parametrize(
    ("patterns", "name", "expected"),
    [
        (["*"], "anything.at.all", True),
        (["service.unhealthy"], "service.unhealthy", True),
        (["service.unhealthy"], "service.unhealthy.more", False),
        (["recovery.*"], "recovery.failed", True),
        (["recovery.*"], "recovery", False),
        (["recovery.*"], "recoveryx.failed", False),
        (["workflow.failed", "circuit.*"], "circuit.opened", True),
        ([], "service.unhealthy", False),
    ],
)
def test_event_patterns(patterns: list[str], name: str, expected: bool) -> None:
    assert event_matches(patterns, name) is expected


async def test_each_webhook_gets_only_the_events_it_names(
    harness: Harness, receiver: Receiver
) -> None:
    harness.start(
        hook(
            receiver,
            "picky",
            url=receiver.url("/picky"),
            events=["service.unhealthy", "recovery.*"],
        ),
        hook(receiver, "all", url=receiver.url("/all")),
    )
    names = [
        "service.unhealthy",
        "service.state",
        "recovery.started",
        "workflow.failed",
        "recoveryx.odd",
        "recovery.last",
    ]
    for name in names:
        harness.bus.publish(name, service="web")
    # One worker per webhook delivers in order: once the last one is in, all are.
    await receiver.arrival("recovery.last", "/picky")
    await receiver.arrival("recovery.last", "/all")
    assert [d.event for d in receiver.received(path="/picky")] == [
        "service.unhealthy",
        "recovery.started",
        "recovery.last",
    ]
    assert [d.event for d in receiver.received(path="/all")] == names


# retries ------------------------------------------------------------------------------


async def test_500_twice_then_200_is_delivered_after_retries(harness: Harness) -> None:
    with running_receiver(secret=SECRET, statuses=[500, 503]) as flaky:
        harness.start(hook(flaky))
        harness.bus.publish("circuit.opened", service="web")
        deliveries = await flaky.arrival("circuit.opened", count=3)
    assert [d.status for d in deliveries] == [500, 503, 200]
    assert [d.headers["X-Medic-Attempt"] for d in deliveries] == ["1", "2", "3"]
    assert len({d.headers["X-Medic-Delivery"] for d in deliveries}) == 1
    assert len({d.body for d in deliveries}) == 1
    assert await harness.counted("ops", "delivered") == 1
    assert harness.count("ops", "retried") == 2
    assert harness.count("ops", "failed") == 0


@pytest.mark.parametrize("status", [400, 404, 410])
async def test_a_4xx_is_rejected_and_not_retried(harness: Harness, status: int) -> None:
    with running_receiver(statuses=[status]) as refusing:
        harness.start(hook(refusing))
        harness.bus.publish("service.unhealthy", service="web")
        await harness.counted("ops", "rejected")
        harness.bus.publish("service.recovered", service="web")
        await refusing.arrival("service.recovered")
        assert [d.status for d in refusing.received("service.unhealthy")] == [status]
    assert harness.count("ops", "retried") == 0


async def test_429_is_retried(harness: Harness) -> None:
    with running_receiver(statuses=[429]) as limited:
        harness.start(hook(limited))
        harness.bus.publish("service.unhealthy", service="web")
        deliveries = await limited.arrival("service.unhealthy", count=2)
    assert [d.status for d in deliveries] == [429, 200]


async def test_a_dead_receiver_is_retried_then_counted_failed(harness: Harness) -> None:
    harness.start(hook(None, max_retries=2))
    harness.bus.publish("service.unhealthy", service="web")
    harness.bus.publish("service.recovered", service="web")
    assert await harness.counted("ops", "failed", at_least=2) == 2
    assert harness.count("ops", "retried") == 4
    assert harness.count("ops", "delivered") == 0


async def test_a_receiver_that_does_not_answer_times_out_and_is_retried(
    harness: Harness,
) -> None:
    with running_receiver() as slow:
        slow.hold()
        harness.start(hook(slow, timeout="200ms", max_retries=1))
        t0 = time.monotonic()
        harness.bus.publish("service.unhealthy", service="web")
        await harness.counted("ops", "failed")
        assert time.monotonic() - t0 < 3
        assert harness.count("ops", "retried") == 1
        slow.release()


def test_backoff_grows_to_its_max_and_honours_retry_after() -> None:
    config = NotificationsConfig.model_validate(
        {"webhooks": [hook(None, backoff={"initial": 1, "factor": 2, "max": 5, "jitter": 0})]}
    ).webhooks[0]
    assert [retry_delay(config, n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert retry_delay(config, 1, retry_after=3) == 3
    assert retry_delay(config, 1, retry_after=3600) == 5


# the queue, stopping, reloading ---------------------------------------------------------


async def test_a_full_queue_drops_the_oldest_and_publishing_never_waits(
    harness: Harness, receiver: Receiver
) -> None:
    receiver.hold()
    harness.start(hook(receiver), queue_size=10)
    t0 = time.monotonic()
    for n in range(25):
        harness.bus.publish("service.state", n=n)
    assert time.monotonic() - t0 < 0.5
    assert harness.count("ops", "dropped") == 15
    receiver.release()
    await receiver.arrival("service.state", count=10)
    await harness.counted("ops", "delivered", at_least=10)
    assert [d.json["data"]["n"] for d in receiver.received()] == list(range(15, 25))


async def test_stop_delivers_what_is_queued(harness: Harness, receiver: Receiver) -> None:
    dispatcher = harness.start(hook(receiver))
    for n in range(5):
        harness.bus.publish("service.state", n=n)
    await dispatcher.stop(flush_s=5)
    assert len(receiver.received("service.state")) == 5
    harness.bus.publish("service.state", n=99)
    assert dispatcher.pending() == {}


async def test_stop_is_bounded_when_the_receiver_hangs(
    harness: Harness, receiver: Receiver
) -> None:
    receiver.hold()
    dispatcher = harness.start(hook(receiver, timeout="30s"))
    for n in range(3):
        harness.bus.publish("service.state", n=n)
    t0 = time.monotonic()
    await dispatcher.stop(flush_s=0.3)
    assert time.monotonic() - t0 < 2
    assert harness.count("ops", "dropped") == 3
    receiver.release()


async def test_stop_does_not_wait_out_backoffs(harness: Harness) -> None:
    slow_backoff = {"initial": "10s", "jitter": 0}
    dispatcher = harness.start(hook(None, max_retries=10, backoff=slow_backoff))
    for n in range(3):
        harness.bus.publish("service.state", n=n)
    await harness.counted("ops", "retried")
    t0 = time.monotonic()
    await dispatcher.stop(flush_s=5)
    assert time.monotonic() - t0 < 2
    # Each event had one more try at stop: failed, none left to drop.
    assert harness.count("ops", "failed") == 3
    assert harness.count("ops", "dropped") == 0


async def test_reload_adds_removes_and_changes_webhooks(
    harness: Harness, receiver: Receiver
) -> None:
    dispatcher = harness.start(hook(receiver, "ops", url=receiver.url("/old")), hook(None, "gone"))
    harness.bus.publish("service.unhealthy", service="web")
    await receiver.arrival("service.unhealthy", "/old")
    new_config = NotificationsConfig.model_validate(
        {
            "webhooks": [
                hook(receiver, "ops", url=receiver.url("/new")),
                hook(receiver, "added", url=receiver.url("/added")),
            ]
        }
    )
    changes = dispatcher.apply(new_config)
    assert changes == {"added": ["added"], "removed": ["gone"], "changed": ["ops"]}
    harness.bus.publish("service.recovered", service="web")
    await receiver.arrival("service.recovered", "/new")
    await receiver.arrival("service.recovered", "/added")
    assert receiver.received("service.recovered", "/old") == []


def test_webhook_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="repeated: ops"):
        NotificationsConfig.model_validate({"webhooks": [hook(None), hook(None)]})


# end to end ---------------------------------------------------------------------------


def webhook_samples(daemon: DaemonProcess) -> Callable[[str, str], float]:
    from tests.test_heal_container import metric_samples

    samples = metric_samples(daemon)

    def value(webhook: str, outcome: str) -> float:
        key = ("medic_webhook_deliveries_total", (("outcome", outcome), ("webhook", webhook)))
        return samples.get(key, 0.0)

    return value


def test_medic_keeps_healing_while_the_receiver_is_down(
    medic_daemon: DaemonFactory, container_factory: ContainerFactory, idle_container: Any
) -> None:
    web = container_factory(name="web")
    hook_port = free_port()  # nothing listens here until the receiver starts below
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring:
  health_check_interval: 30s
  recovery: {{max_attempts: 5, backoff: {{initial: 200ms}}}}
playbooks_dir: {REPO_PLAYBOOKS}
services:
  web:
    check: {{type: http, url: "{web.url}healthz", expect_status: [200]}}
    container: {web.name}
notifications:
  webhooks:
    - name: ops
      url: http://127.0.0.1:{hook_port}/ops
      events: [service.unhealthy, service.recovered, "recovery.*"]
      secret_env: MEDIC_WEBHOOK_SECRET
      max_retries: 1
      backoff: {{initial: 100ms, jitter: 0}}
    - name: patient
      url: http://127.0.0.1:{hook_port}/patient
      events: [service.unhealthy]
      secret_env: MEDIC_WEBHOOK_SECRET
      max_retries: 50
      backoff: {{initial: 100ms, max: 500ms}}
"""
    daemon = medic_daemon(config, env={"MEDIC_WEBHOOK_SECRET": SECRET})
    wait_service(daemon, "healthy")

    web.container.kill()
    healed = _healed(daemon, web, 1)
    assert healed["outcome"] == "succeeded"

    def failures_counted() -> Callable[[str, str], float] | None:
        value = webhook_samples(daemon)
        return value if value("ops", "failed") >= 4 else None

    count = wait_for(
        failures_counted, 20, interval=0.2, message="the failed deliveries to ops are counted"
    )
    assert count("ops", "retried") >= 4
    assert count("ops", "delivered") == 0

    with running_receiver(port=hook_port, secret=SECRET) as receiver:
        # The patient webhook is still retrying the event from the outage.
        (late,) = receiver.wait("service.unhealthy", "/patient", timeout=20)
        assert late.signature_ok is True
        assert int(late.headers["X-Medic-Attempt"]) > 1
        assert late.json["data"]["service"] == "web"

        web.container.kill()
        second = _healed(daemon, web, 2)["id"]
        # Events of the first outage may still arrive (ops retried them once);
        # the second outage's are told apart by their recovery id.
        for event in ("recovery.started", "recovery.succeeded"):
            delivery = _for_recovery(receiver, event, second)
            assert delivery.signature_ok is True
            assert delivery.headers["X-Medic-Attempt"] == "1"
        unhealthy = receiver.wait("service.unhealthy", "/ops")[-1]
        assert unhealthy.signature_ok is True
        assert unhealthy.json["data"]["failure_type"] == "service_crash"
    assert webhook_samples(daemon)("ops", "delivered") >= 3


def _for_recovery(receiver: Receiver, event: str, recovery_id: int) -> Any:
    def found() -> Any:
        matching = [
            d
            for d in receiver.received(event, "/ops")
            if d.json["data"].get("recovery_id") == recovery_id
        ]
        return matching[0] if matching else None

    return wait_for(found, 15, message=f"{event} of recovery {recovery_id} at /ops")


def _healed(daemon: DaemonProcess, web: ContainerHandle, count: int) -> dict[str, Any]:
    record = finished_recoveries(daemon, count)[0]
    assert record["outcome"] == "succeeded", record
    wait_service(daemon, "healthy")
    assert web.status == "running"
    return record


NOTIFY_PLAYBOOK = """
description: page the on-call, then create the flag that makes the check pass
failure_types: [unhealthy_response]
steps:
  - {action: notify, event: ops.paged, message: "${service} failed: ${failure_type}"}
  - {action: run_command, command: [touch, "FLAG"]}
"""


def test_the_notify_action_sends_through_the_webhooks(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag = tmp_path / "healthy.flag"
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n")
    with running_receiver(secret=SECRET) as receiver:
        config = f"""
api: {{listen: 127.0.0.1:{free_port()}}}
monitoring: {{health_check_interval: 200ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  flagged:
    check: {{type: command, command: [test, -e, "{flag}"]}}
notifications:
  webhooks:
    - {{name: pager, url: "{receiver.url()}", events: [ops.paged], secret_file: {secret_file}}}
"""
        playbook = NOTIFY_PLAYBOOK.replace("FLAG", str(flag))
        medic_daemon(config, playbooks={"page-then-fix": playbook})
        (delivery,) = receiver.wait("ops.paged")
    assert delivery.signature_ok is True
    data = delivery.json["data"]
    assert data["service"] == "flagged"
    assert data["failure_type"] == "unhealthy_response"
    assert data["message"] == "flagged failed: unhealthy_response"


def test_a_reload_adds_a_webhook_without_a_restart(
    medic_daemon: DaemonFactory, tmp_path: Path
) -> None:
    flag = tmp_path / "healthy.flag"
    flag.touch()
    base = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
monitoring: {{health_check_interval: 200ms, failure_threshold: 1}}
playbooks_dir: playbooks
services:
  flagged:
    check: {{type: command, command: [test, -e, "{flag}"]}}
"""
    playbooks = {"page": "failure_types: [disk_full]\nsteps: [{action: notify}]"}
    daemon = medic_daemon(base, env={"MEDIC_API_TOKEN": "tok"}, playbooks=playbooks)
    with running_receiver() as receiver:
        daemon.write_config(
            base
            + f"""
notifications:
  webhooks:
    - {{name: late, url: "{receiver.url()}", events: [service.unhealthy]}}
"""
        )
        code, body = daemon.post("/api/v1/reload", token="tok")
        assert code == 200, body
        assert body["changes"]["webhooks"] == {"added": ["late"], "removed": [], "changed": []}
        flag.unlink()
        (delivery,) = receiver.wait("service.unhealthy")
    assert delivery.json["data"]["service"] == "flagged"
