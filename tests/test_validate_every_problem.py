"""``medic validate`` shows every problem in one run, as the real command
prints them (FILE:LINE: path: message) with its exit code: the references of
an entry that also broke the schema, a playbook that cannot act on the service
that names it, a misspelt failure type in a playbook, where an unknown
playbook was looked for, and an approval nobody asked for."""

from __future__ import annotations

from pathlib import Path

from tests.test_validate_cli import EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE, medic_validate, write

RESTART_CONTAINER = (
    "name: restart-container\n"
    "failure_types: [service_crash]\n"
    "steps:\n"
    "  - {action: restart_container, timeout: 30s}\n"
    "  - {action: wait_healthy, timeout: 60s}\n"
)


def test_entries_with_schema_errors_still_have_their_references_checked(tmp_path: Path) -> None:
    write(tmp_path / "playbooks" / "restart-container.yaml", RESTART_CONTAINER)
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: playbooks\n"
        "services:\n"
        "  web:\n"
        "    check: {type: tcp, port: 1}\n"
        "    intervl: 5s\n"
        "    depends_on: [databse]\n"
        "  database:\n"
        "    check: {type: tcpp, port: 1}\n"
        "    depends_on: [cache]\n"
        "workflows:\n"
        "  nightly:\n"
        "    steps:\n"
        "      - {name: a, action: sleep, duration: 1, depends_on: [b]}\n"
        "      - {name: b, action: slep, duration: 1}\n"
        "      - {name: c, action: sleep, duration: 1, depends_on: [x]}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_INVALID, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == f"6 error(s) in {config}"
    where = [line.split(": ", 2)[:2] for line in lines[:-1]]
    assert where == [
        [f"{config}:5", "services.web.intervl"],
        [f"{config}:6", "services.web.depends_on[0]"],
        [f"{config}:8", "services.database.check"],
        [f"{config}:9", "services.database.depends_on[0]"],
        [f"{config}:14", "workflows.nightly.steps[1]"],
        [f"{config}:15", "workflows.nightly.steps[2].depends_on[0]"],
    ]
    assert "unknown service 'databse' (did you mean 'database'?)" in lines[1]
    assert "unknown service 'cache'" in lines[3]
    assert "unknown step 'x'" in lines[5]
    assert result.stdout == ""


def test_a_recovery_playbook_that_cannot_act_on_the_service_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "playbooks" / "restart-container.yaml", RESTART_CONTAINER)
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: playbooks\n"
        "services:\n"
        "  api:\n"
        "    check: {type: http, url: 'http://127.0.0.1:9/'}\n"
        "    recovery: {service_crash: restart-container}\n"
        "  web:\n"
        "    check: {type: http, url: 'http://127.0.0.1:9/'}\n"
        "    container: web\n"
        "    recovery: {service_crash: restart-container}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_INVALID
    assert result.stderr.splitlines() == [
        f"{config}:5: services.api.recovery.service_crash: playbook 'restart-container' cannot"
        " act on this service: its step 1 (restart_container) needs the service's"
        " 'container:', which it does not name",
        f"1 error(s) in {config}",
    ]


def test_unknown_playbook_names_the_folder_it_looked_in(tmp_path: Path) -> None:
    write(tmp_path / "books" / "restart-container.yaml", RESTART_CONTAINER)
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: books\n"
        "services:\n"
        "  web:\n"
        "    check: {type: container}\n"
        "    container: web\n"
        "    recovery: {service_crash: restart-containr}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_INVALID
    assert result.stderr.splitlines()[0] == (
        f"{config}:6: services.web.recovery.service_crash: unknown playbook 'restart-containr':"
        f" no restart-containr.yaml in {tmp_path / 'books'} (playbooks_dir)"
        " (did you mean 'restart-container'?)"
    )


def test_a_misspelt_failure_type_in_a_playbook_gets_a_did_you_mean(tmp_path: Path) -> None:
    playbook = write(
        tmp_path / "playbooks" / "poke.yaml",
        "failure_types: [service_crash, memory_laek]\nsteps:\n  - {action: sleep, duration: 1}\n",
    )
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: playbooks\n"
        "services:\n"
        "  web:\n"
        "    check: {type: tcp, port: 1}\n"
        "    recovery: {service_crash: poke}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_INVALID
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{config}:5: services.web.recovery.service_crash: playbook 'poke' has errors of its own"
        f" (listed under {playbook})"
    )
    assert lines[1].startswith(
        f"{playbook}:1: failure_types[1]: unknown failure type 'memory_laek'"
        " (did you mean 'memory_leak'?); known: connection_timeout, "
    )
    assert lines[2] == f"2 error(s) in {config}"


def test_an_approval_chosen_by_matching_alone_is_a_warning(tmp_path: Path) -> None:
    careful = write(
        tmp_path / "playbooks" / "careful.yaml",
        "failure_types: [service_crash, memory_leak]\n"
        "approval: required\n"
        "steps:\n"
        "  - {action: run_command, command: ['true']}\n",
    )
    config = write(
        tmp_path / "config.yaml",
        "playbooks_dir: playbooks\n"
        "services:\n"
        "  web:\n"
        "    check: {type: tcp, port: 1}\n"
        "  db:\n"
        "    check: {type: tcp, port: 1}\n"
        "    recovery: {service_crash: careful}\n",
    )
    result = medic_validate("--config", str(config))
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.startswith(f"{config}: OK: ")
    assert result.stderr.splitlines() == [
        f"{careful}:2: approval: warning: approval: required, and its failure_types choose it"
        " for services whose recovery: does not name it, so their recoveries wait for an"
        " operator: web (service_crash, memory_leak); name it in their recovery: to make"
        " that deliberate"
    ]


def test_unreadable_still_exits_2(tmp_path: Path) -> None:
    result = medic_validate("--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == EXIT_UNREADABLE
