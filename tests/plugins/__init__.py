"""pytest plugins, one per resource the tests use for real (registered in
``tests/conftest.py``'s ``pytest_plugins``).

    http          http_request(), listening_port
    docker        the engine, the test image, containers labelled with their owner
    postgres      the test database's DSN
    processes     spawn: real processes, killed at the end
    daemon        medic_daemon: ``python -m medic run`` as a subprocess, its log and API
    inprocess     medic in the test's own event loop: resources, orchestrator, bus events
"""
