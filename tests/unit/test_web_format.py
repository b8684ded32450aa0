"""Dashboard number formatting and the hourly chart geometry (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from sidecar.web import charts, formatting


def test_money_keeps_every_digit_and_groups_thousands() -> None:
    assert formatting.money(Decimal("1234567.5000")) == "1,234,567.50"
    assert formatting.money("0.0125") == "0.0125"
    assert formatting.money(Decimal("-3.1000"), "USD") == "-3.10 USD"
    assert formatting.money(Decimal("10")) == "10.00"
    assert formatting.money("0.000001") == "0.000001"  # a rate: 6 decimals, never rounded
    assert formatting.money(None) == "–" and formatting.money("n/a") == "n/a"


def test_durations_are_h_mm_ss() -> None:
    assert formatting.duration(0) == "0:00:00"
    assert formatting.duration(3725) == "1:02:05"
    assert formatting.duration("90.0") == "0:01:30"
    assert formatting.duration(100 * 3600 + 59) == "100:00:59"
    assert formatting.duration(-4) == "0:00:00" and formatting.duration(None) == "–"


def test_counts_percent_and_timestamps() -> None:
    assert formatting.count(1234567) == "1,234,567"
    assert formatting.percent("66.67") == "66.67 %" and formatting.percent(None) == "–"
    lima = timezone(timedelta(hours=-5))
    assert formatting.timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=lima)) == "2026-01-02 08:04:05"
    assert formatting.timestamp(None) == "–"


def test_hourly_bars_scale_to_the_busiest_hour() -> None:
    rows = [
        {"key": datetime(2026, 1, 1, 3, tzinfo=UTC).replace(tzinfo=None).isoformat() + "Z",
         "calls": 2, "revenue": "1.5000"},
        {"key": "2026-01-01T07:00:00Z", "calls": 4, "revenue": "0.5000"},
    ]  # fmt: skip
    bars = charts.hourly_bars(rows, "calls")
    assert [b.hour for b in bars] == list(range(24))
    usable = Decimal(charts.HEIGHT - charts.LABEL_ROOM)
    assert bars[7].height == usable and bars[7].y == 0
    assert bars[3].height == usable / 2 and bars[3].value == 2
    assert all(b.height == 0 and b.y == usable for b in bars if b.hour not in (3, 7))
    assert bars[1].x - bars[0].x == (Decimal(charts.WIDTH) / 24).quantize(Decimal("0.1"))
    revenue = charts.hourly_bars(rows, "revenue")
    assert revenue[3].height == usable and revenue[7].height == (usable / 3).quantize(
        Decimal("0.1")
    )


def test_no_traffic_draws_flat_bars() -> None:
    assert all(b.height == 0 for b in charts.hourly_bars([], "calls"))
