"""Shared fixtures: a real Docker engine, real PostgreSQL, the real daemon.

Nothing here is mocked. When the engine, the test image or PostgreSQL is
missing, the tests that need them FAIL (never skip) and say to run
``scripts/setup-test-env.sh``.

The fixtures live in plugins, one per resource (``tests/plugins/``); each
plugin's docstring lists its fixtures. Helpers a test imports come from where
they are defined: ``tests.helpers`` (polling, ports, ``REPO_ROOT``),
``tests.plugins.http`` (``http_request``), ``tests.plugins.docker``
(``ContainerFactory``, ``ContainerHandle``), ``tests.plugins.daemon``
(``DaemonFactory``, ``DaemonProcess``), ``tests.plugins.inprocess``
(``OrchestratorFactory``, ``BusWatch``).

    listening_port     function  tests.plugins.http
    docker_client      session   tests.plugins.docker
    test_image         session   tests.plugins.docker
    idle_container     session   tests.plugins.docker
    container_factory  function  tests.plugins.docker
    start_counter      function  tests.dockerwatch (Docker's own event stream)
    pg_dsn             session   tests.plugins.postgres
    spawn              function  tests.plugins.processes
    medic_daemon       function  tests.plugins.daemon
    resources          function  tests.plugins.inprocess
    orchestrator       function  tests.plugins.inprocess
    full_disk          function  tests.plugins.fulldisk (a small tmpfs to fill up)
    plain_image        session   tests.plugins.labelled (containers whose labels medic reads)
    labelled           function  tests.plugins.labelled
    compose_project    function  tests.plugins.labelled (Debian's docker-compose v1)
    smtp_server        function  tests.plugins.smtp (a real SMTP server on 127.0.0.1)
    etcd_cluster       function  tests.plugins.etcd (3 etcd members on loopback)
"""

pytest_plugins = [
    "tests.plugins.http",
    "tests.plugins.docker",
    "tests.plugins.postgres",
    "tests.plugins.processes",
    "tests.plugins.daemon",
    "tests.plugins.inprocess",
    "tests.plugins.fulldisk",
    "tests.plugins.labelled",
    "tests.plugins.smtp",
    "tests.plugins.etcd",
    "tests.dockerwatch",
]
