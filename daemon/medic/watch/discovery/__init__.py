"""Discovery: services found rather than written in the config file.

One module per source (``docker_labels``: ``docker.discover`` and
``docker.autoheal_labels``), the naming of discovered containers and their
implied dependencies (``naming``), and the watched set that merges the
config file's services with the discovered ones and applies them to the
monitor (``services``).

May import: ``medic.core``, ``medic.config``, ``medic.host``, ``medic.watch``.
"""
