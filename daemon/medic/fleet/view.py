"""What a medic knows of its fleet: the keys under the prefix, as they are
read once and then followed by a watch.

Key layout (``P`` is ``etcd.prefix``):

- ``P/hosts/GROUP/HOST``: a host's summary (JSON), bound to its lease;
- ``P/heal/SERVICE``: the shared-heal lock of a ``shared: true`` service,
  bound to its holder's lease; its create revision is the holder's fence;
- ``P/result/SERVICE``: the last heal's result, written fenced by its holder;
- ``P/slots/GROUP/N``: the group's ``disruptive_concurrency`` slots, bound to leases;
- ``P/stop/_fleet`` and ``P/stop/GROUP``: an emergency stop (``medic fleet stop``).

Pure data: no etcd call happens here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FLEET_WIDE = "_fleet"
"""The stop key's scope for every group (a group name cannot start with ``_``)."""


@dataclass(frozen=True)
class Keys:
    prefix: str

    def host(self, group: str, host: str) -> str:
        return f"{self.prefix}/hosts/{group}/{host}"

    def heal(self, service: str) -> str:
        return f"{self.prefix}/heal/{service}"

    def result(self, service: str) -> str:
        return f"{self.prefix}/result/{service}"

    def slot(self, group: str, index: int) -> str:
        return f"{self.prefix}/slots/{group}/{index}"

    def stop(self, group: str | None) -> str:
        return f"{self.prefix}/stop/{group or FLEET_WIDE}"

    @property
    def all(self) -> str:
        return f"{self.prefix}/"


@dataclass
class Entry:
    value: dict[str, Any]
    create_revision: int
    lease: int


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"value": value}


@dataclass
class FleetView:
    keys: Keys
    hosts: dict[tuple[str, str], Entry] = field(default_factory=dict)
    locks: dict[str, Entry] = field(default_factory=dict)
    results: dict[str, Entry] = field(default_factory=dict)
    slots: dict[tuple[str, str], Entry] = field(default_factory=dict)
    stops: dict[str, Entry] = field(default_factory=dict)

    def clear(self) -> None:
        for table in (self.hosts, self.locks, self.results, self.slots, self.stops):
            table.clear()

    def apply(self, key: bytes, value: bytes | None, create_revision: int, lease: int) -> str:
        """Take in one key (``value`` None: deleted); returns its kind (``hosts``, ...)."""
        rest = key.decode("utf-8", "replace")[len(self.keys.all) :]
        kind, _, name = rest.partition("/")
        tables: dict[str, dict[Any, Entry]] = {
            "heal": self.locks,
            "result": self.results,
            "stop": self.stops,
            "hosts": self.hosts,
            "slots": self.slots,
        }
        table = tables.get(kind)
        if table is None or not name:
            return ""
        index: Any = name
        if kind in ("hosts", "slots"):
            group, _, member = name.partition("/")
            index = (group, member)
        if value is None:
            table.pop(index, None)
        else:
            table[index] = Entry(_decode(value), create_revision, lease)
        return kind

    def stop_for(self, group: str) -> Entry | None:
        return self.stops.get(FLEET_WIDE) or self.stops.get(group)

    def group_hosts(self, group: str) -> dict[str, Entry]:
        return {host: e for (g, host), e in self.hosts.items() if g == group}
