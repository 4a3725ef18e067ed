"""The ``medic`` command: its arguments, ``medic validate``, ``medic run``
(config loading, logging set-up, the daemon), and the hand-off to the control
commands that talk to a running daemon over its API (``commands``) and to
``medic install-unit`` (``install``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from medic.cli import commands, completion, operate
from medic.cli import fleet as fleet_cli
from medic.cli import install as install_unit
from medic.cli.discovered import validate_labels
from medic.config.load import approval_warnings, load_config
from medic.config.models import LoadedConfig
from medic.config.overrides import valid_listen
from medic.config.schema import config_schema_text
from medic.config.types import parse_duration
from medic.core.errors import ConfigFileError, ConfigInvalid
from medic.core.logging import configure_logging
from medic.core.redact import SecretValues

if TYPE_CHECKING:
    from medic.daemon import Daemon  # imported when `medic run` runs

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a command killed by the closed pipe exits with
LOOP_SWITCH_INTERVAL_S = 0.0005

_CONFIG_CANDIDATES = (Path("control-plane/config.yaml"), Path("/etc/medic/config.yaml"))

_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns (argparse gives it no public name)."""


def default_config_path() -> Path:
    """``$MEDIC_CONFIG``, then ./control-plane/config.yaml, then /etc/medic/config.yaml."""
    env = os.environ.get("MEDIC_CONFIG")
    if env:
        return Path(env)
    for candidate in _CONFIG_CANDIDATES:
        if candidate.exists():
            return candidate
    return _CONFIG_CANDIDATES[0]


_EXAMPLES = """\
examples:
  medic validate                       check the config and the playbooks
  medic run --listen 127.0.0.1:9000    run the daemon, its API on another port
  medic status                         services, workflows, recent recoveries
  medic check web                      run web's check now
  medic pause database --for 2h --reason vacuum
  medic logs web -f                    follow web's output
  medic history web                    web's recent recoveries
  source <(medic completion bash)      complete commands, options and service names

exit codes: 0 ok; 1 failed; 2 unusable input; 3 `medic status`: a service is
not healthy (or the daemon is not running); 4 still running at --timeout.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medic",
        description="A self-healing monitoring daemon.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    validate = sub.add_parser("validate", help="check the config and playbooks")
    _config_arg(validate)
    sub.add_parser(
        "schema",
        help="print the JSON Schema of config.yaml (for editors)",
        description="Print the JSON Schema of config.yaml, generated from medic's models."
        " Editors with yaml-language-server complete and check keys with it: start the file"
        " with `# yaml-language-server: $schema=./config.schema.json`.",
    )
    _add_service_commands(sub)
    operate.add_arguments(sub, _client_args)
    _add_workflows(sub)
    fleet = sub.add_parser("fleet", help="the fleet (with fleet:): status, emergency stop, resume")
    _client_args(fleet)
    fleet_cli.add_arguments(fleet)
    install = sub.add_parser("install-unit", help="install medic as a systemd service")
    install_unit.add_arguments(install)
    complete = sub.add_parser(
        "completion",
        help="print a shell completion script",
        epilog="example:\n  medic completion bash > /etc/bash_completion.d/medic",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    complete.add_argument("shell", choices=["bash"])
    return parser


def _add_run(sub: _Commands) -> None:
    run = sub.add_parser("run", help="run the daemon in the foreground")
    _config_arg(run)
    run.add_argument("--state-dir", type=Path, help="override daemon.state_dir")
    run.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help="override api.listen (checks of medic's own API follow it)",
    )
    run.add_argument(
        "--log-format", choices=["auto", "console", "json"], help="override daemon.log_format"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="record every recovery step, touch nothing"
    )


def _add_service_commands(sub: _Commands) -> None:
    """``status``, and the commands that act on one service or recovery."""
    status = sub.add_parser("status", help="services, workflows and recent recoveries")
    _client_args(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    check = sub.add_parser("check", help="run one service's check now")
    _client_args(check)
    _wait_arg(check)
    check.add_argument("service")

    recover = sub.add_parser("recover", help="run a service's recovery now")
    _client_args(recover)
    _wait_arg(recover)
    recover.add_argument("service")
    recover.add_argument(
        "--failure-type",
        help="e.g. service_crash (default: the current one, else unhealthy_response)",
    )
    recover.add_argument("--dry-run", action="store_true", help="record the steps, touch nothing")

    reset = sub.add_parser(
        "reset", help="close a service's open circuit and give its recovery attempts back"
    )
    _client_args(reset)
    reset.add_argument("service")

    notify = sub.add_parser(
        "notify-test",
        help="send a test message through every (or one) Apprise target",
        description="Asks the running daemon to send a test message through its"
        " notifications.apprise targets (with the URLs and environment the daemon has)"
        " and prints each URL's outcome; exit 1 when one did not get it.",
    )
    _client_args(notify)
    notify.add_argument("name", nargs="?", help="only this target (default: every one)")
    notify.add_argument("--json", action="store_true", help="print the raw JSON")

    for verb, what in (("approve", "run"), ("reject", "refuse")):
        decide = sub.add_parser(verb, help=f"{what} a recovery waiting for approval")
        _client_args(decide)
        decide.add_argument("recovery_id", type=int, metavar="RECOVERY_ID")


def _add_workflows(sub: _Commands) -> None:
    workflows = sub.add_parser(
        "workflows",
        help="list, start, stop or run workflows; resume a failed or cut-off run",
        epilog="examples:\n  medic workflows list\n  medic workflows stop nightly\n"
        "  medic workflows start nightly            resume its schedule\n"
        "  medic workflows start nightly --run-now  resume it and run now\n"
        "  medic workflows run nightly --timeout 10m\n"
        "  medic workflows resume 42                resume run 42 at its failed step",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _client_args(workflows)
    _wait_arg(workflows, "`workflows run`")
    workflows.add_argument("action", choices=["list", "start", "stop", "run", "resume"])
    workflows.add_argument("id", nargs="?", help="a workflow ID (resume: a run ID)")
    workflows.add_argument(
        "--workflow", help="resume: the run's workflow (found from the run ID when not given)"
    )
    workflows.add_argument("--json", action="store_true", help="print the raw JSON")
    workflows.add_argument(
        "--run-now",
        action="store_true",
        help="with `start`: also start a run now (default: only resume the schedule)",
    )


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config file (default: $MEDIC_CONFIG, ./control-plane/config.yaml,"
        " /etc/medic/config.yaml)",
    )


def _client_args(parser: argparse.ArgumentParser) -> None:
    _config_arg(parser)
    parser.add_argument("--url", help="the daemon's API (default: api.listen from the config)")


def _wait_arg(parser: argparse.ArgumentParser, what: str = "it") -> None:
    parser.add_argument(
        "--timeout",
        type=_duration,
        default=None,
        metavar="DURATION",
        help=f"stop waiting for {what} after this long (e.g. 90s, 10m; default: wait until"
        " it ends); the daemon goes on with it, and the command exits 4",
    )


def _listen(text: str) -> str:
    try:
        return valid_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text!r})")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = _main(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `medic status | head -3`: the reader has gone; nothing more to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _main(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "validate":
        return _validate(args.config or default_config_path())
    if args.command == "schema":
        print(config_schema_text(), end="")
        return EXIT_OK
    if args.command == "install-unit":
        return install_unit.main(args)
    if args.command == "completion":
        print(completion.bash(_parser()), end="")
        return EXIT_OK
    return commands.main(args, default_config_path)


def _load_or_say_why(
    path: Path, state_dir: Path | None, summary: Callable[[int], str], listen: str | None = None
) -> LoadedConfig | int:
    """The loaded config, or the exit code after printing every problem to stderr."""
    try:
        return load_config(path, state_dir=state_dir, listen=listen)
    except ConfigFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except ConfigInvalid as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(summary(len(exc.issues)), file=sys.stderr)
        return EXIT_INVALID


def _validate(path: Path) -> int:
    loaded = _load_or_say_why(path, None, lambda n: f"{n} error(s) in {Path(path).resolve()}")
    if isinstance(loaded, int):
        return loaded
    for warning in (*loaded.warnings, *approval_warnings(loaded)):
        print(warning, file=sys.stderr)
    labels = validate_labels(loaded)
    if labels is not None and labels[1]:
        print(f"{labels[1]} bad container label(s) (docker.discover)", file=sys.stderr)
        return EXIT_INVALID
    found = f", {labels[0]} discovered from container labels" if labels is not None else ""
    print(loaded.summary() + found)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from medic.daemon import Daemon

    path = args.config or default_config_path()
    loaded = _load_or_say_why(
        path, args.state_dir, lambda n: f"medic: not starting: {n} config error(s)", args.listen
    )
    if isinstance(loaded, int):
        return loaded
    daemon_cfg = loaded.model.daemon
    # The daemon fills ``secrets`` as it takes each config: the log masks them by value.
    secrets = SecretValues()
    configure_logging(
        args.log_format or daemon_cfg.log_format, daemon_cfg.log_level.upper(), secrets=secrets
    )
    # The daemon logs the config's warnings (missing secrets) as it takes it,
    # at start and at every reload alike.
    daemon = Daemon(
        Path(path),
        state_dir=args.state_dir,
        dry_run=args.dry_run,
        listen=args.listen,
        loaded=loaded,
        secrets=secrets,
    )
    return _run_daemon(daemon)


def _run_daemon(daemon: Daemon) -> int:
    """Run the daemon until it stops; what went wrong becomes a message and exit code."""
    from medic.core.lifecycle import TeardownError
    from medic.daemon import StartupError, event_loop_factory
    from medic.store import StateDirInUse, StateDirUnusable

    # While a worker thread runs Python (rendering /metrics, Docker SDK calls),
    # the event loop drops the GIL at each system call and may wait a whole
    # switch interval to get it back: at the default 5 ms, 129 of the 211 checks
    # due during a full scrape at 1,000 services started over 25 ms late; at
    # 0.5 ms, none of 293 (bench/scale.py).
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL_S)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(daemon.run())
    except StartupError as exc:
        print(f"medic: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except StateDirInUse as exc:
        print(f"medic: not starting: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except StateDirUnusable as exc:
        print(f"medic: not starting: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except TeardownError as exc:  # each failure was logged as it happened
        print(f"medic: stopped; these failed to close: {', '.join(exc.parts)}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
