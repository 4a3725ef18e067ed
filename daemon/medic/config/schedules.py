"""Workflow schedules: a ``schedule:`` block to an APScheduler trigger, and
every problem with one, each naming the key at fault.

``interval`` fires every N seconds, ``cron`` is a standard 5-field crontab
line, ``at`` fires once at an ISO datetime; ``timezone`` is an IANA name
(without it, and for a naive ``at``, the host's local zone applies).

Crontab counts weekdays from Sunday (0 and 7); APScheduler 3 counts its
numbers from Monday, so the weekday field is rewritten as names, which it
reads the way crontab means them. Day-of-month and weekday both restricted
means both must match (APScheduler's rule, not crontab's either-or).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from medic.config.models import ScheduleConfig
from medic.core.errors import MedicError

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class ScheduleError(MedicError, ValueError):
    """A schedule that cannot be built; ``key`` is the schedule key at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def build_trigger(schedule: ScheduleConfig) -> BaseTrigger:
    """The APScheduler trigger for a schedule; ``ScheduleError`` says what is wrong."""
    return _trigger(schedule, _zone(schedule.timezone))


def schedule_errors(schedule: ScheduleConfig) -> list[ScheduleError]:
    """Every problem with ``schedule`` (a bad timezone and a bad cron line are both told)."""
    errors: list[ScheduleError] = []
    zone = None
    try:
        zone = _zone(schedule.timezone)
    except ScheduleError as exc:
        errors.append(exc)
    try:
        _trigger(schedule, zone)
    except ScheduleError as exc:
        errors.append(exc)
    return errors


def _trigger(schedule: ScheduleConfig, zone: ZoneInfo | None) -> BaseTrigger:
    if schedule.interval is not None:
        return IntervalTrigger(seconds=schedule.interval, timezone=zone)
    if schedule.cron is not None:
        try:
            return CronTrigger.from_crontab(crontab_for_apscheduler(schedule.cron), timezone=zone)
        except ValueError as exc:
            raise ScheduleError("cron", f"invalid cron {schedule.cron!r}: {exc}") from None
    assert schedule.at is not None  # ScheduleConfig requires exactly one
    return DateTrigger(run_date=_parse_at(schedule.at), timezone=zone)


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "timezone", f"unknown timezone {name!r} (use an IANA name like 'Europe/Berlin')"
        ) from None


def _parse_at(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(
            "at", f"'at' must be an ISO datetime like 2026-12-01T03:00:00 (got {value!r})"
        ) from None


def crontab_for_apscheduler(expr: str) -> str:
    """A crontab line with its weekday field as names (see the module docs)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron line has 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    if fields[4] != "*":
        try:
            days = set().union(*(_weekdays(part) for part in fields[4].split(",")))
        except ValueError:
            raise ValueError(f"invalid weekday field {fields[4]!r}") from None
        fields[4] = ",".join(_WEEKDAYS[day] for day in sorted(days))
    return " ".join(fields)


def _weekdays(part: str) -> set[int]:
    """Days (0 = Sunday) of one crontab weekday item: ``*``, ``n``, ``a-b``, with ``/step``."""
    span, slash, step_text = part.partition("/")
    step = int(step_text) if slash else 1
    if span == "*":
        low, high = 0, 6
    elif "-" in span:
        first, last = span.split("-", 1)
        low, high = _weekday(first), _weekday(last)
        if high == 0 < low:
            high = 7  # "fri-sun": Sunday closes the week
    else:
        low = _weekday(span)
        high = 7 if slash else low
    if step < 1 or low > high:
        raise ValueError(part)
    return {day % 7 for day in range(low, high + 1, step)}


def _weekday(text: str) -> int:
    lowered = text.lower()
    if lowered in _WEEKDAYS:
        return _WEEKDAYS.index(lowered)
    day = int(text)
    if not 0 <= day <= 7:
        raise ValueError(text)
    return day
