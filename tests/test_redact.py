"""Masking: URL passwords by pattern, and the secret values medic resolved by value."""

from __future__ import annotations

from pathlib import Path

import pytest

from medic.config.secrets import secret_values
from medic.core.redact import SecretValues, redact_urls


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://medic:pw@db/app", "postgresql://medic:***@db/app"),
        ("x https://u:p@h/ and ftp://a:b@c", "x https://u:***@h/ and ftp://a:***@c"),
        ("redis://:secret@h:6379", "redis://:***@h:6379"),
        ("http://h:80/x no credentials", "http://h:80/x no credentials"),
        ("no url at all", "no url at all"),
    ],
)
def test_url_passwords_are_masked(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


def test_secret_values_are_masked_wherever_they_appear_longest_first() -> None:
    secrets = SecretValues()
    secrets.replace(["hunter22", "hunter22-and-more", "abc", 'quo"te-pass'])
    assert secrets.redact("a hunter22-and-more b hunter22 c abc") == "a *** b *** c abc"
    assert secrets.redact('{"detail": "quo\\"te-pass"}') == '{"detail": "***"}'


def test_the_config_names_its_secrets_by_env_file_and_url(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-a-file-123\n")
    config = {
        "api": {"token_env": "TOKEN", "token_file": "token"},
        "services": {
            "db": {"check": {"dsn_env": "DSN", "dsn": "postgresql://u:inline-pw@h/db"}},
            "gone": {"check": {"dsn_env": "UNSET"}},
        },
    }
    env = {"TOKEN": "env-token-456", "DSN": "postgresql://u:env-pw-789@h/db"}
    assert secret_values(config, env, tmp_path) == {
        "env-token-456",
        "from-a-file-123",
        "postgresql://u:env-pw-789@h/db",
        "env-pw-789",
        "inline-pw",
    }
