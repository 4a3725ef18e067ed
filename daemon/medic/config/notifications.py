"""The ``notifications.apprise`` entries: chat, mail and push through Apprise.

Secrets are never in the config file: the URLs (which carry tokens and
passwords) come from ``urls_env`` (an environment variable holding one or
more URLs, separated by commas, spaces or newlines) or ``urls_file`` (a file
of them, one or more a line, ``#`` comments). A literal ``urls:`` list is
accepted for URLs that carry no credential (``json://127.0.0.1:8080/hook``);
one with a password in it (``scheme://user:password@host``) is refused, and
every literal URL draws a warning in ``medic validate``.
"""

from __future__ import annotations

import re
from string import Template

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medic.config.types import Duration, RelPath

TEMPLATE_FIELDS = ("service", "failure_type", "outcome", "detail", "host", "duration", "url")
"""What ``title``/``body`` templates may name, as ``${service}``."""

DEFAULT_EVENTS = (
    "service.unhealthy",
    "recovery.started",
    "service.recovered",
    "recovery.failed",
    "circuit.opened",
    "recovery.approval_required",
    "workflow.failed",
)
"""The events an incident is told by, when ``events`` is not given."""

_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^@\s/]+@")
_SPLIT = re.compile(r"[\s,]+")


def split_urls(text: str) -> list[str]:
    """URLs from an environment variable or a file: separated by commas,
    whitespace or newlines; ``#`` starts a comment to the end of its line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [url for line in lines for url in _SPLIT.split(line) if url]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppriseBackoff(_Section):
    initial: Duration = 2.0
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max: Duration = 60.0
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)


class AppriseConfig(_Section):
    """One Apprise target: its URLs, the events it tells and how often."""

    name: str = Field(min_length=1)
    urls: list[str] = Field(default_factory=list)
    urls_env: str | None = None
    urls_file: RelPath | None = None
    events: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    title: str | None = None
    body: str | None = None
    notify_interval: Duration = Field(default=60.0, ge=0)
    """Per service: at most one incident told per interval; the rest is folded in."""
    timeout: Duration = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=50)
    backoff: AppriseBackoff = AppriseBackoff()

    @model_validator(mode="after")
    def _one_source(self) -> AppriseConfig:
        given = [bool(self.urls), self.urls_env is not None, self.urls_file is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of urls_env, urls_file and urls")
        return self

    @field_validator("urls")
    @classmethod
    def _no_password(cls, urls: list[str]) -> list[str]:
        for position, url in enumerate(urls):
            if _PASSWORD.match(url):
                raise ValueError(
                    f"urls[{position}] has a password in it; secrets are never in the config "
                    "file: put the URLs in urls_env or urls_file"
                )
        return urls

    @field_validator("title", "body")
    @classmethod
    def _known_fields(cls, text: str | None) -> str | None:
        if text is None:
            return None
        template = Template(text)
        if not template.is_valid():
            raise ValueError("a template names its fields as ${name}; write $$ for a dollar sign")
        unknown = sorted(set(template.get_identifiers()) - set(TEMPLATE_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown template field(s) {', '.join(unknown)}; "
                f"known: {', '.join(TEMPLATE_FIELDS)}"
            )
        return text


def literal_url_warning(url: str) -> str:
    """What ``medic validate`` says about a URL kept in the file."""
    scheme = url.split("://", 1)[0]
    return (
        f"warning: a {scheme}:// URL is kept in the config file; if it carries a token, "
        "move it to urls_env or urls_file (secrets are never in the file)"
    )


__all__ = [
    "DEFAULT_EVENTS",
    "TEMPLATE_FIELDS",
    "AppriseBackoff",
    "AppriseConfig",
    "literal_url_warning",
    "split_urls",
]
