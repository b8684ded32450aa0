"""The legacy zones/prefixes/rate_zones model converted to rate rows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sidecar.imports.legacy_zones import convert, per_second_to_minute

START = datetime(2024, 5, 1, tzinfo=UTC)
ZONES = [
    {"id": "1", "zone_name": "Peru", "zone_code": "PE", "description": "Fixed"},
    {"id": "2", "zone_name": "Peru Mobile", "zone_code": "PEM", "description": ""},
]
PREFIXES = [
    {"id": "10", "zone_id": "1", "prefix": "511", "enabled": "true"},
    {"id": "11", "zone_id": "2", "prefix": "+519", "enabled": "true"},
    {"id": "12", "zone_id": "2", "prefix": "5198", "enabled": "false"},
]
RATE_ZONES = [
    {"zone_id": "1", "rate_per_second": "0.0005", "billing_increment": "6", "priority": "1"},
    {"zone_id": "2", "rate_per_second": "0.0041666", "billing_increment": "", "enabled": "1"},
    {"zone_id": "2", "rate_per_second": "9", "enabled": "false"},
]


@pytest.mark.parametrize(
    ("per_second", "per_minute"),
    [
        ("0.0005", "0.03"),
        ("0.0041666", "0.249996"),
        ("0", "0"),
        ("1", "60"),
        (".000001", "0.00006"),
    ],
)
def test_per_second_times_sixty_is_exact(per_second: str, per_minute: str) -> None:
    assert per_second_to_minute(per_second) == Decimal(per_minute)


@pytest.mark.parametrize("bad", ["0.00000001", "-0.1", "NaN", "abc", "99999999999"])
def test_per_second_values_that_cannot_be_stored_exactly_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        per_second_to_minute(bad)


def test_enabled_prefixes_join_enabled_rate_zones() -> None:
    rows, errors = convert(ZONES, PREFIXES, RATE_ZONES, START)
    assert errors == []
    got = [(r.prefix, r.name, r.rate_per_minute, r.increment, r.initial_increment, r.priority)
           for r in rows]  # fmt: skip
    assert got == [
        ("511", "Peru - Fixed", Decimal("0.03"), 6, 6, 1),
        ("519", "Peru Mobile", Decimal("0.249996"), 60, 60, 0),
    ]
    assert {r.effective_start for r in rows} == {START}
    assert [r.line for r in rows] == [2, 3]
    assert all(r.connection_fee == 0 and r.enabled and r.effective_end is None for r in rows)


def test_legacy_rate_per_minute_column_is_read_as_per_second() -> None:
    rows, errors = convert(
        ZONES[:1], PREFIXES[:1], [{"zone_id": "1", "rate_per_minute": "0.0005"}], START
    )
    assert errors == [] and rows[0].rate_per_minute == Decimal("0.03")


def test_a_zone_with_two_rate_rows_gives_each_prefix_two_rates() -> None:
    rate_zones = [
        {"zone_id": "1", "rate_per_second": "0.001", "priority": "0"},
        {"zone_id": "1", "rate_per_second": "0.002", "priority": "5"},
    ]
    rows, errors = convert(ZONES, PREFIXES[:1], rate_zones, START)
    assert errors == []
    assert [(r.prefix, r.rate_per_minute, r.priority) for r in rows] == [
        ("511", Decimal("0.06"), 0),
        ("511", Decimal("0.12"), 5),
    ]


def test_errors_name_table_line_and_field() -> None:
    zones = [*ZONES, {"id": "1", "zone_name": "dup"}, {"id": "3"}]
    prefixes = [*PREFIXES, {"zone_id": "7", "prefix": "1"}, {"zone_id": "1", "prefix": "12a"}]
    rate_zones = [
        {"zone_id": "1", "rate_per_second": 0.5},
        {"zone_id": "9", "rate_per_second": "1"},
    ]
    _rows, errors = convert(zones, prefixes, rate_zones, START)
    assert [(e.table, e.line, e.field) for e in errors] == [
        ("zones", 4, "id"),
        ("zones", 5, "zone_name"),
        ("rate_zones", 2, "rate_per_second"),
        ("rate_zones", 3, "zone_id"),
        ("prefixes", 5, "zone_id"),
        ("prefixes", 6, "prefix"),
    ]
    assert "binary float" in str(errors[2])
    assert str(errors[3]) == "rate_zones line 3: zone_id: no zone 9"


def test_json_scalars_are_accepted() -> None:
    rows, errors = convert(
        [{"id": 1, "zone_name": "X"}],
        [{"zone_id": 1, "prefix": 44, "enabled": True}],
        [{"zone_id": 1, "rate_per_second": Decimal("0.01"), "billing_increment": 1}],
        START,
    )
    assert errors == []
    assert (rows[0].prefix, rows[0].rate_per_minute, rows[0].increment) == ("44", Decimal("0.6"), 1)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError):
        convert([], [], [], datetime(2024, 1, 1))


def test_rate_zones_may_carry_a_timing_a_minimum_charge_and_free_seconds() -> None:
    rate_zones = [
        {"zone_id": "1", "rate_per_second": "0.0005", "timing": "peak", "minimum_charge": "0.5",
         "free_seconds": "6", "priority": "1"},
        {"zone_id": "1", "rate_per_second": "0.0002", "timing": "", "minimum_charge": ""},
    ]  # fmt: skip
    rows, errors = convert(ZONES, PREFIXES[:1], rate_zones, START)
    assert errors == []
    assert [(r.timing, r.minimum_charge, r.free_seconds, r.priority) for r in rows] == [
        ("peak", Decimal("0.5"), 6, 1), (None, Decimal(0), 0, 0),
    ]  # fmt: skip
    bad = [{"zone_id": "1", "rate_per_second": "1", "timing": "peak hours",
            "minimum_charge": "-1", "free_seconds": "x"}]  # fmt: skip
    rows, errors = convert(ZONES, PREFIXES[:1], bad, START)
    assert sorted(e.field for e in errors) == ["free_seconds", "minimum_charge", "timing"]
