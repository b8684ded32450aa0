"""Timings: named sets of instants in a plan's time zone (peak hours, weekends, holidays).

A timing holds an instant when the instant's local date, weekday and time of day (in the
timing's zone, DST included) all fit it:

- ``weekdays``: ISO weekdays (1 = Monday .. 7 = Sunday); empty = every day;
- ``dates``: local dates; empty = any date;
- a daily window ``start <= time < end`` in seconds of the local day (``end`` 86400 =
  midnight at the end of the day); ``end <= start`` wraps past midnight (22:00-06:00 holds
  22:00-24:00 and 00:00-06:00 of every day that fits); 0-86400 is the whole day.

Each instant is judged on its own local time, so on the night clocks go back a window
may be entered twice, and a window edge that falls in the skipped hour of spring takes
effect when the clocks jump.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

DAY_SECONDS = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Timing:
    id: int
    name: str
    zone: tzinfo
    weekdays: frozenset[int] = frozenset()
    start: int = 0
    end: int = DAY_SECONDS
    dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not (0 <= self.start < DAY_SECONDS and 0 < self.end <= DAY_SECONDS):
            raise ValueError("a daily window runs from 00:00 .. 23:59:59 to 00:00:01 .. 24:00")
        if self.start == self.end:
            raise ValueError("a daily window cannot start and end at the same time")
        if not self.weekdays <= set(range(1, 8)):
            raise ValueError("weekdays are 1 (Monday) .. 7 (Sunday)")

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        if self.dates and local.date() not in self.dates:
            return False
        if self.weekdays and local.isoweekday() not in self.weekdays:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second
        if self.start < self.end:
            return self.start <= second < self.end
        return second >= self.start or second < self.end

    @property
    def whole_day(self) -> bool:
        return self.start == 0 and self.end == DAY_SECONDS

    def describe(self) -> dict[str, object]:
        """The timing as the API and the index file show it."""
        return {
            "id": self.id,
            "name": self.name,
            "days": format_days(self.weekdays),
            "from": format_clock(self.start),
            "to": format_clock(self.end),
            "dates": [d.isoformat() for d in sorted(self.dates)],
        }

    def edges(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants in ``(start, end)`` where ``contains`` may change its answer: every
        local midnight and window edge (both readings of a wall time the clocks pass
        twice) and every change of the zone's UTC offset. A superset: callers evaluate."""
        if end <= start:
            return []
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date() + timedelta(days=1)
        clocks = {0, self.start, self.end % DAY_SECONDS}
        found: set[datetime] = set()
        day = first
        while day <= last:
            for second in clocks:
                wall = datetime.combine(day, _clock(second), tzinfo=self.zone)
                for fold in (0, 1):
                    instant = wall.replace(fold=fold).astimezone(UTC)
                    if start < instant < end:
                        found.add(instant)
            day += timedelta(days=1)
        found.update(offset_changes(self.zone, start, end))
        return sorted(found)


def _clock(second: int) -> time:
    return time(second // 3600, second // 60 % 60, second % 60)


def offset_changes(zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in ``(start, end)`` at which ``zone``'s UTC offset changes (DST, and
    a country's change of zone), to the microsecond; sampled hourly, which no zone's rules
    outpace."""
    found: list[datetime] = []
    low = start.astimezone(UTC)
    offset = low.astimezone(zone).utcoffset()
    while low < end:
        high = min(low + _HOUR, end)
        if high.astimezone(zone).utcoffset() != offset:
            lo, hi = low, high  # offset(lo) is the old one, offset(hi) the new
            while hi - lo > timedelta(microseconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            if start < hi < end:
                found.append(hi)
            offset = high.astimezone(zone).utcoffset()
        low = high
    return found


# ------------------------------------------------------------------------- text forms


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri``, ``sat,sun``, ``fri-mon`` (wraps), ``mon-fri,sun``; full names too;
    empty = every day."""
    days: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, sep, last = part.partition("-")
        a = _DAY_NUMBERS.get(first.strip().lower(), 0)
        b = _DAY_NUMBERS.get(last.strip().lower(), 0) if sep else a
        if not a or not b:
            raise ValueError(f"{part!r} is not a day or range of days such as mon-fri")
        days.add(a)
        while a != b:
            a = a % 7 + 1
            days.add(a)
    return frozenset(days)


_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NUMBERS = {name: n for n, full in enumerate(_FULL, 1) for name in (full[:3], full)}


def format_days(days: Iterable[int]) -> str:
    """Sorted days as ranges: ``mon-fri``, ``sat,sun``; ``""`` for every day."""
    chosen = sorted(set(days))
    if len(chosen) == 7:
        return ""
    parts: list[str] = []
    run: list[int] = []
    for day in chosen:
        if run and day != run[-1] + 1:
            parts.append(_run(run))
            run = []
        run.append(day)
    if run:
        parts.append(_run(run))
    return ",".join(parts)


def _run(run: list[int]) -> str:
    if len(run) <= 2:
        return ",".join(WEEKDAYS[d - 1] for d in run)
    return f"{WEEKDAYS[run[0] - 1]}-{WEEKDAYS[run[-1] - 1]}"


def parse_clock(text: str, *, end: bool = False) -> int:
    """``HH:MM`` or ``HH:MM:SS`` as seconds of the day; ``24:00`` only as an end."""
    parts = text.strip().split(":")
    ok = 2 <= len(parts) <= 3 and all(len(p) == 2 and p.isascii() and p.isdigit() for p in parts)
    if ok:
        h, m, s = (int(p) for p in (*parts, "00")[:3])
        value = h * 3600 + m * 60 + s
        if m < 60 and s < 60 and (value < DAY_SECONDS or (end and value == DAY_SECONDS)):
            return value
    last = "24:00" if end else "23:59"
    raise ValueError(f"{text!r} is not a time of day 00:00 .. {last} (HH:MM or HH:MM:SS)")


def format_clock(second: int) -> str:
    h, m, s = second // 3600, second // 60 % 60, second % 60
    return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def parse_dates(text: str) -> frozenset[date]:
    """``2026-12-25,2027-01-01`` (ISO dates, comma separated)."""
    found: set[date] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            if len(part) != 10:
                raise ValueError
            found.add(date.fromisoformat(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a date such as 2026-12-25") from None
    return frozenset(found)
