"""Timings (pure): days, windows, dates, time zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sidecar.rating.timing import (
    Timing,
    format_clock,
    format_days,
    offset_changes,
    parse_clock,
    parse_dates,
    parse_days,
)
from sidecar.rating.zones import UnknownZoneError, zone

NY = zone("America/New_York")
MX = zone("America/Mexico_City")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "days", "shown"),
    [
        ("mon-fri", {1, 2, 3, 4, 5}, "mon-fri"),
        ("sat,sun", {6, 7}, "sat,sun"),
        ("fri-mon", {5, 6, 7, 1}, "mon,fri-sun"),
        ("Monday, wed", {1, 3}, "mon,wed"),
        ("mon-fri,sun", {1, 2, 3, 4, 5, 7}, "mon-fri,sun"),
        ("", set(), ""),
    ],
)
def test_days(text: str, days: set[int], shown: str) -> None:
    assert parse_days(text) == days
    assert format_days(days) == shown


@pytest.mark.parametrize("bad", ["mo", "mon-", "funday", "mon-xyz", "1-5"])
def test_bad_days(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_days(bad)


def test_clock() -> None:
    assert parse_clock("08:00") == 8 * 3600
    assert parse_clock("23:59:30") == 86370
    assert parse_clock("24:00", end=True) == 86400
    assert format_clock(86400) == "24:00" and format_clock(30) == "00:00:30"
    for bad in ("24:00", "8:00", "08:60", "08-00", "25:00"):
        with pytest.raises(ValueError):
            parse_clock(bad)


def test_dates() -> None:
    assert parse_dates("2026-12-25, 2027-01-01") == {date(2026, 12, 25), date(2027, 1, 1)}
    for bad in ("2026-13-01", "25/12/2026", "2026-1-1"):
        with pytest.raises(ValueError):
            parse_dates(bad)


def test_zones() -> None:
    assert zone("UTC").utcoffset(utc(2026, 1, 1)) == timedelta(0)
    for bad in ("Mars/Olympus", "../etc/passwd", "/etc/localtime", "", "America//X"):
        with pytest.raises(UnknownZoneError):
            zone(bad)


def test_weekday_window_in_the_plans_zone() -> None:
    # Mexico City is UTC-6 all year (no DST since 2022)
    peak = Timing(1, "peak", MX, parse_days("mon-fri"), parse_clock("08:00"), parse_clock("20:00"))
    assert not peak.contains(utc(2026, 3, 2, 13, 59, 59))  # Mon 07:59:59 local
    assert peak.contains(utc(2026, 3, 2, 14, 0, 0))  # Mon 08:00 local
    assert peak.contains(utc(2026, 3, 3, 1, 59, 59))  # Mon 19:59:59 local (Tue in UTC)
    assert not peak.contains(utc(2026, 3, 3, 2, 0, 0))  # Mon 20:00 local
    assert not peak.contains(utc(2026, 3, 7, 15, 0, 0))  # Saturday


def test_a_window_past_midnight_and_dates() -> None:
    night = Timing(2, "night", zone("UTC"), start=parse_clock("22:00"), end=parse_clock("06:00"))
    assert night.contains(utc(2026, 3, 2, 23, 0)) and night.contains(utc(2026, 3, 3, 5, 59, 59))
    assert not night.contains(utc(2026, 3, 3, 6, 0)) and not night.contains(utc(2026, 3, 3, 21))
    holidays = Timing(3, "holidays", MX, dates=parse_dates("2026-12-25,2027-01-01"))
    assert holidays.contains(utc(2026, 12, 25, 6, 0))  # 00:00 local on the 25th
    assert not holidays.contains(utc(2026, 12, 25, 5, 59, 59))  # still the 24th locally
    assert holidays.contains(utc(2026, 12, 26, 5, 59, 59))


def test_dst_spring_forward_moves_the_window_edge_to_the_jump() -> None:
    # New York, 2026-03-08: 01:59:59 EST (06:59:59 UTC) is followed by 03:00 EDT (07:00 UTC)
    early = Timing(4, "early", NY, start=0, end=parse_clock("02:30"))
    assert early.contains(utc(2026, 3, 8, 6, 59, 59))
    assert not early.contains(utc(2026, 3, 8, 7, 0, 0))
    edges = early.edges(utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 8, 0))
    assert utc(2026, 3, 8, 7, 0) in edges  # where the answer changes
    assert offset_changes(NY, utc(2026, 3, 7), utc(2026, 3, 9)) == [utc(2026, 3, 8, 7, 0)]


def test_dst_fall_back_enters_a_window_twice() -> None:
    # New York, 2026-11-01: 01:00-02:00 local happens at 05:00-06:00 UTC (EDT) and again at
    # 06:00-07:00 UTC (EST)
    one_am = Timing(5, "one-am", NY, start=parse_clock("01:00"), end=parse_clock("02:00"))
    assert not one_am.contains(utc(2026, 11, 1, 4, 59, 59))
    assert one_am.contains(utc(2026, 11, 1, 5, 30))
    assert one_am.contains(utc(2026, 11, 1, 6, 30))
    assert not one_am.contains(utc(2026, 11, 1, 7, 0))
    edges = one_am.edges(utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    assert {utc(2026, 11, 1, 5), utc(2026, 11, 1, 7)} <= set(edges)


def test_timings_refuse_empty_or_odd_windows() -> None:
    with pytest.raises(ValueError):
        Timing(6, "x", MX, start=3600, end=3600)
    with pytest.raises(ValueError):
        Timing(6, "x", MX, weekdays=frozenset({0}))


def test_zones_come_from_the_pinned_tzdata_package_without_a_system_database() -> None:
    import zoneinfo

    import tzdata

    zone.cache_clear()
    zoneinfo.reset_tzpath(to=[])  # as on a host without /usr/share/zoneinfo
    try:
        ny = zone("America/New_York")
        assert ny.utcoffset(utc(2026, 7, 1)) == timedelta(hours=-4)
        assert tzdata.IANA_VERSION  # the lock pins the rules every host prices with
    finally:
        zoneinfo.reset_tzpath()
        zone.cache_clear()
