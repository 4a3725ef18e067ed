"""``medic notify-test`` against a real daemon and a real receiver, the secrets
in Apprise URLs kept out of the log, the API and the CLI's output, and the
config checks of ``notifications.apprise``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medic.config.load import load_config
from medic.core.errors import ConfigInvalid
from tests.helpers import free_port
from tests.plugins.daemon import DaemonFactory
from tests.plugins.smtp import SmtpServer, text_of
from tests.test_cli_client import run_cli
from tests.webhook_receiver import running_receiver

TOKEN = "notify-test-token"
SECRET = "hunter2-s3cret"
PATH_TOKEN = "AbCdEf0123456789"


def test_notify_test_sends_through_every_target_and_prints_each_outcome(
    medic_daemon: DaemonFactory, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    closed = free_port()
    urls_file = tmp_path / "pager.urls"
    # A password and a path token: both secrets, in a file the config only names.
    urls_file.write_text(f"# the pager\njson://medic:{SECRET}@127.0.0.1:{closed}/{PATH_TOKEN}\n")
    with running_receiver() as receiver:
        chat = receiver.url("/notify").replace("http://", "json://")
        config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
services: {{}}
notifications:
  apprise:
    - {{name: chat, urls_env: MEDIC_CHAT_URLS}}
    - {{name: pager, urls_file: pager.urls, timeout: 3s}}
"""
        env = {"MEDIC_API_TOKEN": TOKEN, "MEDIC_CHAT_URLS": f"{chat} {smtp_server.url()}"}
        daemon = medic_daemon(config, env=env)
        cli_env = {"MEDIC_API_TOKEN": TOKEN}

        one = run_cli("notify-test", "chat", "--url", daemon.url, env=cli_env)
        assert one.returncode == 0, one.stderr
        lines = one.stdout.splitlines()
        assert len(lines) == 2
        assert lines[0].split()[:6] == ["chat", "apprise", "url", "1", "(json://)", "delivered"]
        assert lines[1].split()[:6] == ["chat", "apprise", "url", "2", "(mailto://)", "delivered"]
        (sent,) = [d.json for d in receiver.received()]
        assert sent["message"].startswith("medic test message")
        assert text_of(smtp_server.wait(1)[0]).startswith("medic test message")

        every = run_cli("notify-test", "--url", daemon.url, env=cli_env)
        assert every.returncode == 1  # the pager cannot be reached
        pager = [line for line in every.stdout.splitlines() if line.startswith("pager")]
        assert pager and pager[0].split()[5] == "failed", every.stdout
        assert len(receiver.received()) == 2

        unknown = run_cli("notify-test", "nope", "--url", daemon.url, env=cli_env)
        assert unknown.returncode == 1
        assert "no notifier (notifications.apprise or .webhooks) named 'nope'" in unknown.stderr
        assert "configured: chat, pager" in unknown.stderr

        status, body = daemon.post("/api/v1/notifications/test", {"name": "pager"}, token=TOKEN)
        assert status == 200
        (row,) = body["results"]
        assert row["url"] == "url 1 (json://)" and row["outcome"] == "failed"
        daemon.stop()
    shown = every.stdout + every.stderr + str(body) + daemon.log_text()
    assert SECRET not in shown and PATH_TOKEN not in shown
    assert "127.0.0.1" in row["detail"]  # the host stays: it says where it failed


def test_notify_test_needs_the_operate_scope(medic_daemon: DaemonFactory) -> None:
    config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
services: {{}}
"""
    daemon = medic_daemon(config, env={"MEDIC_API_TOKEN": TOKEN})
    status, body = daemon.post("/api/v1/notifications/test", {})
    assert status == 401, body
    status, body = daemon.post("/api/v1/notifications/test", {}, token=TOKEN)
    assert (status, body) == (200, {"results": []})
    for wrong in ({"name": 3}, {"name": None}, {"nmae": "chat"}):
        status, body = daemon.post("/api/v1/notifications/test", wrong, token=TOKEN)
        assert status == 422 and body["error"]["code"] == "INVALID_BODY", (wrong, body)
    done = run_cli("notify-test", "--url", daemon.url, env={"MEDIC_API_TOKEN": TOKEN})
    assert done.returncode == 1
    assert "no notifier (notifications.apprise or .webhooks) is configured" in done.stderr


def test_notify_test_sends_a_signed_test_event_to_each_webhook(
    medic_daemon: DaemonFactory,
) -> None:
    with running_receiver(secret=SECRET) as ok, running_receiver(statuses=[403]) as refusing:
        config = f"""
api: {{listen: 127.0.0.1:{free_port()}, token_env: MEDIC_API_TOKEN}}
services: {{}}
notifications:
  webhooks:
    # A test goes out whatever a webhook's events say.
    - name: ops
      url: "{ok.url(f"/hook/{PATH_TOKEN}")}"
      secret_env: HOOK_SECRET
      events: [circuit.opened]
    - {{name: audit, url: "{refusing.url()}"}}
"""
        env = {"MEDIC_API_TOKEN": TOKEN, "HOOK_SECRET": SECRET}
        daemon = medic_daemon(config, env=env)
        cli_env = {"MEDIC_API_TOKEN": TOKEN}

        one = run_cli("notify-test", "ops", "--url", daemon.url, env=cli_env)
        assert one.returncode == 0, one.stderr
        (line,) = one.stdout.splitlines()
        assert line.split()[:5] == [
            "ops",
            "webhook",
            f"http://127.0.0.1:{ok.port}/…",
            "delivered",
            "HTTP",
        ]
        (sent,) = ok.received()
        assert sent.signature_ok is True
        assert sent.headers["X-Medic-Event"] == "notify.test"
        assert (sent.json["event"], sent.json["data"]["service"]) == ("notify.test", "medic")

        every = run_cli("notify-test", "--url", daemon.url, "--json", env=cli_env)
        assert every.returncode == 1  # audit refuses it
        rows = {row["name"]: row for row in json.loads(every.stdout)["results"]}
        assert (rows["audit"]["kind"], rows["audit"]["outcome"]) == ("webhook", "rejected")
        assert rows["audit"]["detail"] == "HTTP 403"
        assert rows["ops"]["outcome"] == "delivered"
        assert len(ok.received()) == 2 and len(refusing.received()) == 1
        text = daemon.get("/metrics")[1]
        assert 'medic_webhook_deliveries_total{outcome="rejected",webhook="audit"} 1.0' in text
    assert PATH_TOKEN not in one.stdout + every.stdout  # a URL's path may hold a token


def _issues(tmp_path: Path, apprise_yaml: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(f"services: {{}}\nnotifications:\n  apprise:\n{apprise_yaml}")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


def test_the_config_checks_apprise_entries_like_webhooks(tmp_path: Path) -> None:
    (typo,) = _issues(tmp_path, "    - {name: chat, urls_env: X, events: [circuit.opend]}\n")
    assert "config.yaml:4: notifications.apprise[0].events[0]" in typo
    assert "did you mean 'circuit.opened'" in typo

    (password,) = _issues(tmp_path, "    - {name: chat, urls: ['mailto://me:pw@mail.host']}\n")
    assert "has a password in it" in password and "urls_env or urls_file" in password
    assert "pw@" not in password

    (both,) = _issues(tmp_path, "    - {name: chat, urls_env: X, urls_file: f}\n")
    assert "exactly one of urls_env, urls_file and urls" in both

    (field,) = _issues(tmp_path, "    - {name: chat, urls_env: X, body: '${servce} down'}\n")
    assert "unknown template field(s) servce" in field

    (twice,) = _issues(tmp_path, "    - {name: a, urls_env: X}\n    - {name: a, urls_env: Y}\n")
    assert "names must be unique; repeated: a" in twice


def test_a_literal_url_is_a_warning_and_the_defaults_hold(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "api: {public_url: 'https://medic.example.com'}\nservices: {}\nnotifications:\n"
        "  apprise:\n    - {name: chat, urls: ['json://127.0.0.1:9/hook']}\n"
    )
    loaded = load_config(path)
    (warning,) = [str(w) for w in loaded.warnings]
    assert "notifications.apprise[0].urls[0]" in warning and "urls_env or urls_file" in warning
    (entry,) = loaded.model.notifications.apprise
    assert entry.notify_interval == 60.0
    assert "service.recovered" in entry.events and "circuit.opened" in entry.events


def test_a_target_reads_its_urls_at_send_time(tmp_path: Path) -> None:
    """A rotated urls_file applies without a reload (as webhook secrets do)."""
    from medic.config.notifications import AppriseConfig
    from medic.tell.apprise import UrlsUnavailable, read_urls

    urls = tmp_path / "urls"
    config = AppriseConfig(name="x", urls_file=urls)
    with pytest.raises(UrlsUnavailable, match="cannot read urls_file"):
        read_urls(config)
    urls.write_text("# nothing yet\n")
    with pytest.raises(UrlsUnavailable, match="holds no URL"):
        read_urls(config)
    urls.write_text("slack://a/b/c/#ops, json://h/x\nmailto://h\n")
    assert read_urls(config) == ["slack://a/b/c/#ops", "json://h/x", "mailto://h"]


def test_what_apprise_says_is_scrubbed_of_every_url_secret() -> None:
    from medic.tell.apprise import label, scrub

    urls = [
        "discord://4174296324183/AbCdEfGhIjKlMnOp",
        "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100123",
        "mailto://medic:pa55word@mail.example.com?to=ops@example.com",
        "ntfys://ntfy.example.com/medic-alerts?token=tk_verysecret",
    ]
    said = (
        "Failed to send Discord notification to https://discord.com/api/webhooks/"
        "4174296324183/AbCdEfGhIjKlMnOp; tgram 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw;"
        " login medic pa55word refused; ntfy medic-alerts tk_verysecret"
    )
    clean = scrub(said, urls)
    for secret in ("4174296324183", "AbCdEfGhIjKlMnOp", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                   "pa55word", "tk_verysecret", "medic-alerts"):  # fmt: skip
        assert secret not in clean, clean
    assert clean.startswith("Failed to send Discord notification to https://discord.com/")
    assert [label(urls, i) for i in range(4)] == [
        "url 1 (discord://)",
        "url 2 (tgram://)",
        "url 3 (mailto://)",
        "url 4 (ntfys://)",
    ]
