"""The per-service metric families, kept and written out by medic itself.

With 1,000 services these families are about 17,000 of the 18,000 series of
``/metrics``. Through prometheus-client (a ``labels()`` lookup and a lock per
update; per scrape a ``Sample`` tuple, a label dict and a formatted line per
series) one full scrape took 1.4-1.8 s of CPU here. Kept as plain lists and
written straight to text it takes tens of milliseconds (docs/benchmarks.md,
"Scale"), and a check's update is a dict lookup, a bisect and two additions.

The text is the same classic format (0.0.4) prometheus-client writes, without
its ``_created`` series. The event loop updates these while a worker thread
renders them: the renderer copies each series in one step (a C-level copy the
GIL keeps whole), so a scrape never sees a series half-updated, and never a
dict changing size under it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from prometheus_client import utils

go_number = cast(Callable[[float], str], utils.floatToGoString)
"""prometheus-client's number format (``+Inf``, ``1e+06``), untyped there."""

CHUNK_SERIES = 100
"""Series per chunk of ``render_chunks``: a few milliseconds of work at most."""

LabelValues = tuple[str, ...]
Wanted = Callable[[str], bool]
"""Whether a sample name is to be written (``?name[]=`` filtering)."""


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_text(names: Sequence[str], values: LabelValues) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


def _braces(label: str) -> str:
    return f"{{{label}}}" if label else ""


class _Family:
    kind = ""

    def __init__(self, name: str, documentation: str, label_names: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = tuple(label_names)
        self._labels: dict[LabelValues, str] = {}
        """Label values -> their text (``service="web",type="http"``), made once."""

    def _label(self, values: LabelValues) -> str:
        text = self._labels.get(values)
        if text is None:
            text = self._labels[values] = _label_text(self.label_names, values)
        return text

    def header(self) -> list[str]:
        # As prometheus-client writes 0.0.4: a counter's family is named with its _total.
        name = self.name + "_total" if self.kind == "counter" else self.name
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        return [f"# HELP {name} {help_text}", f"# TYPE {name} {self.kind}"]

    def sample_names(self) -> tuple[str, ...]:
        return (self.name,)

    def chunks(self, wanted: Wanted | None) -> Iterator[list[str]]:
        """Its lines, ``CHUNK_SERIES`` series at a time; with ``wanted``, only the
        samples it names (none: no header either)."""
        names = self.sample_names()
        if wanted is not None and not any(wanted(n) for n in names):
            return
        items = self._items()  # the series as they are now; later ones wait for the next scrape
        yield self.header()
        for start in range(0, len(items), CHUNK_SERIES):
            yield self._samples(wanted, items[start : start + CHUNK_SERIES])

    def _items(self) -> list[tuple[LabelValues, Any]]:
        raise NotImplementedError

    def _samples(self, wanted: Wanted | None, items: list[tuple[LabelValues, Any]]) -> list[str]:
        raise NotImplementedError


class ValueFamily(_Family):
    """A gauge or a counter: one number per label set."""

    def __init__(
        self, name: str, documentation: str, label_names: Sequence[str], kind: str
    ) -> None:
        super().__init__(name, documentation, label_names)
        self.kind = kind
        self._values: dict[LabelValues, float] = {}

    def sample_names(self) -> tuple[str, ...]:
        return (self.name + "_total",) if self.kind == "counter" else (self.name,)

    def set(self, values: LabelValues, value: float) -> None:
        self._values[values] = value

    def inc(self, values: LabelValues, amount: float = 1.0) -> None:
        self._values[values] = self._values.get(values, 0.0) + amount

    def get(self, values: LabelValues) -> float | None:
        return self._values.get(values)

    def remove(self, values: LabelValues) -> None:
        self._values.pop(values, None)
        self._labels.pop(values, None)

    def _items(self) -> list[tuple[LabelValues, Any]]:
        return list(self._values.items())

    def _samples(self, wanted: Wanted | None, items: list[tuple[LabelValues, Any]]) -> list[str]:
        sample = self.sample_names()[0]
        label = self._label
        return [f"{sample}{_braces(label(values))} {go_number(value)}" for values, value in items]


class HistogramFamily(_Family):
    """A histogram per label set: counts per bucket (not cumulative), then the sum."""

    kind = "histogram"

    def __init__(
        self, name: str, documentation: str, label_names: Sequence[str], buckets: Iterable[float]
    ) -> None:
        super().__init__(name, documentation, label_names)
        self._bounds = tuple(float(b) for b in buckets)
        self._le = [go_number(b) for b in self._bounds] + ["+Inf"]
        self._series: dict[LabelValues, list[float]] = {}
        self._whole = self._series_template()

    def _series_template(self) -> str:
        """One series' lines as one ``str.format`` template: {0} the labels, then the
        cumulative counts, the count and the sum (one call per series, not 15)."""
        bucket, count, total = self.sample_names()
        lines = [
            bucket + "{{{0}," + f'le="{le}"' + "}} {" + f"{i + 1}!r" + "}"
            for i, le in enumerate(self._le)
        ]
        n = len(self._le)
        lines.append(count + "{{{0}}} {" + f"{n + 1}!r" + "}")
        lines.append(total + "{{{0}}} {" + f"{n + 2}!r" + "}")
        return "\n".join(lines)

    def sample_names(self) -> tuple[str, ...]:
        return (self.name + "_bucket", self.name + "_count", self.name + "_sum")

    def observe(self, values: LabelValues, amount: float) -> None:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = [0.0] * (len(self._bounds) + 2)
        # bisect_left: the first bucket whose bound is >= amount (Prometheus' "le").
        series[bisect.bisect_left(self._bounds, amount)] += 1.0
        series[-1] += amount

    def count(self, values: LabelValues) -> float:
        series = self._series.get(values)
        return 0.0 if series is None else sum(series[:-1])

    def _items(self) -> list[tuple[LabelValues, Any]]:
        return list(self._series.items())

    def _samples(self, wanted: Wanted | None, items: list[tuple[LabelValues, Any]]) -> list[str]:
        if wanted is None and self.label_names:
            return self._whole_samples(items)
        bucket, count, total = self.sample_names()
        keep_bucket = wanted is None or wanted(bucket)
        keep_count = wanted is None or wanted(count)
        keep_sum = wanted is None or wanted(total)
        lines: list[str] = []
        for values, live in items:
            series = tuple(live)  # one copy: counts and sum of the same moment
            label = self._label(values)
            cumulative = 0.0
            if keep_bucket:
                head = f"{bucket}{{{label}," if label else f"{bucket}{{"
                for le, n in zip(self._le, series, strict=False):
                    cumulative += n
                    lines.append(f'{head}le="{le}"}} {cumulative!r}')
            else:
                cumulative = sum(series[:-1])
            braces = _braces(label)
            if keep_count:
                lines.append(f"{count}{braces} {cumulative!r}")
            if keep_sum:
                lines.append(f"{total}{braces} {go_number(series[-1])}")
        return lines

    def _whole_samples(self, items: list[tuple[LabelValues, Any]]) -> list[str]:
        # repr: counts and sums are finite floats; Prometheus reads "1234567.0" as
        # well as prometheus-client's "1.234567e+06", and repr is 3x cheaper.
        template, label = self._whole.format, self._label
        lines = []
        for values, live in items:
            series = tuple(live)  # one copy: counts and sum of the same moment
            cumulative = list(itertools.accumulate(series[:-1]))
            lines.append(template(label(values), *cumulative, cumulative[-1], series[-1]))
        return lines


def render_chunks(families: Iterable[_Family], names: Sequence[str]) -> Iterator[list[str]]:
    """The lines of ``families``, a few series at a time; only the samples named in
    ``names`` when it is not empty."""
    wanted: Wanted | None = frozenset(names).__contains__ if names else None
    for family in families:
        yield from family.chunks(wanted)


def render(families: Iterable[_Family], names: Sequence[str]) -> str:
    """The text of ``families`` in one go (see ``render_chunks``)."""
    return text([line for chunk in render_chunks(families, names) for line in chunk])


def text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""
