"""Loading and validating the config and the playbooks, reporting every problem
at once as ``FILE:LINE: dotted.path: message``."""

from __future__ import annotations

import os
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from medic.config import _yaml, salvage
from medic.config.models import Config, LoadedConfig, Playbook, ServiceSpec
from medic.config.notifications import literal_url_warning
from medic.config.overrides import with_listen
from medic.config.refs import check_references, unnamed_approval_choices
from medic.core.errors import ConfigFileError, ConfigInvalid, ConfigIssue
from medic.core.hints import did_you_mean
from medic.core.vocabulary import FailureType


@dataclass
class _Document:
    path: Path
    data: Any
    source: _yaml.SourceMap

    def issue(self, loc: tuple[str | int, ...], message: str, *, key: bool = False) -> ConfigIssue:
        return ConfigIssue(
            file=str(self.path), line=self.source.line_of(loc, key=key), path=loc, message=message
        )


def load_config(
    path: str | Path, *, state_dir: str | Path | None = None, listen: str | None = None
) -> LoadedConfig:
    """Load and validate ``path`` and its playbooks (``listen``: ``medic run --listen``).

    Raises ``ConfigFileError`` when the file is missing or not YAML, and
    ``ConfigInvalid`` with every problem found otherwise.
    """
    doc = _read_document(Path(path), required_mapping=True)
    issues = _duplicate_issues(doc)
    context = {"base_dir": doc.path.parent}
    config: Config | None = None
    try:
        config = Config.model_validate(doc.data or {}, context=context)
    except ValidationError as exc:
        issues += _validation_issues(exc, doc, Config)
        # One run of `medic validate` shows every problem it can: the
        # playbooks, and the references among the parts that did validate.
        issues += _issues_beyond_the_schema(doc, exc)
    playbooks: dict[str, Playbook] = {}
    if config is not None:
        playbooks, playbook_issues = _load_playbooks(config, doc)
        issues += playbook_issues
        issues += check_references(config, playbooks, doc.issue)
    if issues or config is None:
        raise ConfigInvalid(sorted(issues, key=lambda i: (i.file, i.line)))
    if state_dir is not None:
        daemon = config.daemon.model_copy(update={"state_dir": Path(state_dir).resolve()})
        config = config.model_copy(update={"daemon": daemon})
    if listen is not None:
        config = with_listen(config, listen)
    services = {
        name: ServiceSpec.resolve(name, svc, config.monitoring)
        for name, svc in config.services.items()
        if svc.enabled
    }
    return LoadedConfig(
        path=doc.path,
        model=config,
        services=services,
        playbooks=playbooks,
        warnings=tuple(_secret_warnings(doc, os.environ)),
    )


def approval_warnings(loaded: LoadedConfig) -> list[ConfigIssue]:
    """A playbook with ``approval: required`` that its ``failure_types`` choose for
    services that do not name it: those recoveries would wait for a person,
    which their config does not say. ``medic validate`` prints these."""
    found = []
    choices = unnamed_approval_choices(loaded.model, loaded.playbooks)
    for name, services in sorted(choices.items()):
        file = next(loaded.model.playbooks_dir.glob(f"{name}.y*ml"), None)
        if file is None:
            continue
        doc = _read_document(file, required_mapping=True)
        uses = "; ".join(f"{svc} ({', '.join(types)})" for svc, types in sorted(services.items()))
        message = (
            "warning: approval: required, and its failure_types choose it for services whose"
            f" recovery: does not name it, so their recoveries wait for an operator: {uses};"
            " name it in their recovery: to make that deliberate"
        )
        found.append(doc.issue(("approval",), message))
    return found


def _read_document(path: Path, *, required_mapping: bool) -> _Document:
    path = path.expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigFileError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc}") from exc
    try:
        data, source = _yaml.load(text, str(path))
    except _yaml.YamlSyntaxError as exc:
        raise ConfigFileError(f"{path}:{exc.line or 1}: not valid YAML: {exc}") from exc
    if required_mapping and data is not None and not isinstance(data, dict):
        raise ConfigFileError(f"{path}:1: the top level must be a mapping of keys to values")
    return _Document(path, data, source)


def _duplicate_issues(doc: _Document) -> list[ConfigIssue]:
    return [
        ConfigIssue(str(doc.path), line, loc, "duplicate key: it is given more than once")
        for loc, line in doc.source.duplicates
    ]


def _issues_beyond_the_schema(doc: _Document, exc: ValidationError) -> list[ConfigIssue]:
    """Playbook problems, and reference problems (``depends_on``, playbook names,
    schedules, step graphs, ...) of what is left once the parts that broke the
    schema are taken out (``salvage``): the entries with schema errors included."""
    broken = salvage.error_paths(exc, doc.data)
    data = salvage.salvaged(doc.data, broken)
    config: Config | None = None
    for _ in range(_SALVAGE_ROUNDS):
        if data is None:
            break
        try:
            config = Config.model_validate(data, context={"base_dir": doc.path.parent})
            break
        except ValidationError as again:
            more = salvage.error_paths(again, data)
            broken += more
            data = salvage.salvaged(data, more)
    if config is None:
        return _playbook_issues_without_config(doc)
    playbooks, issues = _load_playbooks(config, doc)
    references = check_references(config, playbooks, doc.issue)
    if any(path[:1] == ("workflows",) for path in broken):
        # A broken step's notify events are unknown here: webhook events
        # that only it would publish must not be reported as unknown.
        references = [i for i in references if i.path[:1] != ("notifications",)]
    return issues + [i for i in references if not salvage.overlaps(i.path, broken)]


_SALVAGE_ROUNDS = 3
"""Taking a broken part out may reveal another (a stand-in that still does not fit)."""


def _playbook_issues_without_config(doc: _Document) -> list[ConfigIssue]:
    raw = doc.data.get("playbooks_dir") if isinstance(doc.data, dict) else None
    default = Config.model_fields["playbooks_dir"].default
    try:
        fallback = Config.model_validate(
            {"playbooks_dir": raw if isinstance(raw, str) else str(default)},
            context={"base_dir": doc.path.parent},
        )
    except ValidationError:
        return []
    _playbooks, issues = _load_playbooks(fallback, doc)
    return [i for i in issues if i.path != ("playbooks_dir",)] if raw is None else issues


def _load_playbooks(
    config: Config, doc: _Document
) -> tuple[dict[str, Playbook], list[ConfigIssue]]:
    directory = config.playbooks_dir
    if not directory.is_dir():
        if "playbooks_dir" not in config.model_fields_set:
            return {}, []  # the default folder is optional: no playbooks, notify only
        return {}, [doc.issue(("playbooks_dir",), f"no such directory: {directory}")]
    playbooks: dict[str, Playbook] = {}
    issues: list[ConfigIssue] = []
    for file in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        playbook, found = _load_playbook(file)
        issues += found
        if playbook is not None:
            playbooks[playbook.name] = playbook
    return playbooks, issues


def _load_playbook(file: Path) -> tuple[Playbook | None, list[ConfigIssue]]:
    try:
        doc = _read_document(file, required_mapping=True)
    except ConfigFileError as exc:
        return None, [_file_error_issue(file, exc)]
    data = dict(doc.data or {})
    data.setdefault("name", file.stem)
    issues = _duplicate_issues(doc)
    try:
        playbook = Playbook.model_validate(data, context={"base_dir": file.parent})
    except ValidationError as exc:
        return None, issues + _validation_issues(exc, doc, Playbook)
    if playbook.name != file.stem:
        issues.append(doc.issue(("name",), f"the name must match the file name {file.stem!r}"))
    for index, step in enumerate(playbook.steps):
        if step.depends_on:
            issues.append(doc.issue(("steps", index, "depends_on"), _NO_DEPENDS_IN_PLAYBOOK))
    return (None if issues else playbook), issues


_NO_DEPENDS_IN_PLAYBOOK = "playbook steps run in order; depends_on is for workflow steps"


def _file_error_issue(file: Path, exc: ConfigFileError) -> ConfigIssue:
    text = str(exc)
    prefix = f"{file.resolve()}:"
    line = 1
    rest = text
    if text.startswith(prefix):
        head, _, rest = text[len(prefix) :].partition(": ")
        line = int(head) if head.isdigit() else 1
    return ConfigIssue(str(file.resolve()), line, (), rest)


def _validation_issues(
    exc: ValidationError, doc: _Document, root: type[BaseModel]
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        data_path = salvage.data_path(loc, doc.data)
        message = _message(error, root, loc)
        issues.append(doc.issue(data_path, message, key=error["type"] == "extra_forbidden"))
    return issues


def schema_problems(
    exc: ValidationError, data: Any, root: type[BaseModel]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Each problem of ``exc`` (validating ``data`` as ``root``) as the path of
    the key in ``data`` and the message ``medic validate`` prints for it."""
    return [
        (salvage.data_path(tuple(error["loc"]), data), _message(error, root, tuple(error["loc"])))
        for error in exc.errors(include_url=False)
    ]


def _message(error: Any, root: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key_message(str(loc[-1]), _known_fields(root, loc[:-1]))
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return _unknown_name_message(
            _tag_noun(ctx.get("discriminator", "")), str(ctx.get("tag")), _tags(ctx)
        )
    if kind == "union_tag_not_found":
        noun = str(ctx.get("discriminator", "type")).strip("'")
        return f"missing key {noun!r}"
    if kind == "enum" and ("[key]" in loc or _lists_failure_types(ctx)):
        known = [t.value for t in FailureType]
        return _unknown_name_message("failure type", str(error.get("input")), known)
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _lists_failure_types(ctx: dict[str, Any]) -> bool:
    """Whether an enum error expected a failure type (a playbook's ``failure_types``)."""
    expected = str(ctx.get("expected", ""))
    return all(repr(t.value) in expected for t in FailureType)


def _tag_noun(discriminator: str) -> str:
    return "action" if "action" in discriminator else "check type"


def _tags(ctx: dict[str, Any]) -> list[str]:
    expected = str(ctx.get("expected_tags", ""))
    return [t.strip().strip("'") for t in expected.split(",") if t.strip()]


def _unknown_name_message(noun: str, name: str, known: list[str]) -> str:
    hint = did_you_mean(name, known)
    did_you_mean_text = f" (did you mean {hint!r}?)" if hint else ""
    return f"unknown {noun} {name!r}{did_you_mean_text}; known: {', '.join(sorted(known))}"


def _unknown_key_message(key: str, known: list[str]) -> str:
    if not known:
        return f"unknown key {key!r}"
    return _unknown_name_message("key", key, known)


def _known_fields(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    tp: Any = root
    for elem in loc:
        tp = _step_type(tp, elem)
        if tp is None:
            return []
    tp = _strip_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [field.alias or name for name, field in tp.model_fields.items()]
    return []


def _strip_optional(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is not None and getattr(origin, "__name__", "") == "Annotated":
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _step_type(tp: Any, elem: Any) -> Any:
    tp = _strip_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(elem))
        return field.annotation if field is not None else None
    origin = get_origin(tp)
    if origin in (list, tuple):
        return get_args(tp)[0]
    if origin is dict:
        return get_args(tp)[1]
    if origin in (Union, types.UnionType):
        return _union_member(tp, elem)
    return None


def _union_member(tp: Any, tag: Any) -> Any:
    for member in get_args(tp):
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for name in salvage.DISCRIMINATORS:
            field = member.model_fields.get(name)
            literal = field is not None and get_origin(field.annotation) is Literal
            if literal and field is not None and tag in get_args(field.annotation):
                return member
    return None


def _secret_warnings(doc: _Document, env: Mapping[str, str]) -> list[ConfigIssue]:
    """Secrets the config names that are not there now: ``*_env`` variables that
    are unset and ``*_file`` files that are missing (relative to the config file).

    Warnings, not errors: the daemon's environment (systemd's ``EnvironmentFile``,
    credentials) may differ from the shell ``medic validate`` runs in.
    """
    found: list[ConfigIssue] = []
    for loc, key, value in _string_leaves(doc.data, ()):
        if key.endswith("_env") and value not in env:
            message = f"warning: the environment variable {value} is not set here"
        elif key.endswith("_file") and not (doc.path.parent / value).is_file():
            message = f"warning: {doc.path.parent / value} is not a readable file here"
        else:
            continue
        found.append(doc.issue(loc, message))
    notifications = doc.data.get("notifications") if isinstance(doc.data, dict) else None
    entries = notifications.get("apprise") if isinstance(notifications, dict) else None
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        urls = entry.get("urls") if isinstance(entry, dict) else None
        for pos, url in enumerate(urls if isinstance(urls, list) else []):
            loc = ("notifications", "apprise", index, "urls", pos)
            found.append(doc.issue(loc, literal_url_warning(str(url))))
    return found


def _string_leaves(
    data: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and isinstance(key, str):
                yield (*loc, key), key, value
            else:
                yield from _string_leaves(value, (*loc, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _string_leaves(item, (*loc, index))
