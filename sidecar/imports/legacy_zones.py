"""The legacy three-table zone model (zones, prefixes, rate_zones) turned into rate rows.

The original design kept a zone per destination, its dialled prefixes, and the zone's
price in ``rate_zones`` as a rate **per second** (the migration note converts it with
``rate_zones.rate_per_minute * 60``: that legacy column is misnamed and holds a per-second
value, so both ``rate_per_second`` and the legacy ``rate_per_minute`` column are read as
per-second). Each enabled prefix of a zone gets one rate per enabled rate_zones row of
that zone, exactly as the migration's ``INSERT ... SELECT`` joins them:

- ``prefix``: the legacy prefix (digits, one leading ``+`` dropped);
- ``name``: ``zone_name - description`` (just ``zone_name`` without a description);
- ``rate_per_minute``: per-second rate x 60, exact in Decimal; a result that does not fit
  the rates table (6 decimals, 12 integer digits) is an error, never rounded;
- ``initial_increment`` = ``increment`` = ``billing_increment`` (default 60);
- ``priority`` from the rate_zones row (default 0); connection fee 0;
- ``effective_start`` = the import's start instant;
- optional rate_zones columns with the meaning they have in the rate CSV:
  ``timing`` (a timing's name in the plan, checked at import), ``minimum_charge``
  (money) and ``free_seconds``; absent or empty: none, 0 and 0.

Pure: rows come in as mappings of column name to value (CSV text or JSON scalars); the
result is :class:`RateRow` values plus every error, named by table and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from sidecar.imports.rates_csv import (
    MONEY_DECIMALS,
    MONEY_INTEGER_DIGITS,
    RateRow,
    parse_enabled,
    parse_increment,
    parse_money,
    parse_prefix,
    parse_priority,
    parse_seconds,
    parse_timing_name,
)

PER_MINUTE = Decimal(60)
_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMALS)
_LIMIT = Decimal(10) ** MONEY_INTEGER_DIGITS
Row = Mapping[str, object]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LegacyError:
    table: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.table} line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Zone:
    name: str


@dataclass(frozen=True, slots=True)
class _Price:
    per_minute: Decimal
    increment: int
    priority: int
    timing: str | None = None
    minimum_charge: Decimal = Decimal(0)
    free_seconds: int = 0


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise ValueError("must be a decimal string, not a binary float")
    return str(value).strip()


def per_second_to_minute(text: str) -> Decimal:
    """``text`` per second as an exact per-minute Decimal that fits numeric(18,6)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} must be a finite, non-negative number")
    minute = value * PER_MINUTE
    if minute >= _LIMIT:
        raise ValueError(f"{text}/s x 60 = {minute}/min is too large")
    if minute != minute.quantize(_QUANTUM):
        raise ValueError(
            f"{text}/s x 60 = {minute}/min has more than {MONEY_DECIMALS} decimals;"
            " it is never rounded"
        )
    return minute


class _Reader:
    def __init__(self) -> None:
        self.errors: list[LegacyError] = []

    def cell(
        self,
        table: str,
        line: int,
        row: Row,
        field: str,
        parse: Callable[[str], T],
        default: T | None = None,
    ) -> T | None:
        try:
            text = _text(row.get(field))
            if not text:
                if default is None:
                    raise ValueError("is required")
                return default
            return parse(text)
        except ValueError as exc:
            self.errors.append(LegacyError(table, line, field, str(exc)))
            return None


def _zones(reader: _Reader, zones: Iterable[Row]) -> dict[str, _Zone]:
    found: dict[str, _Zone] = {}
    for line, row in enumerate(zones, 2):
        zone_id = reader.cell("zones", line, row, "id", str)
        name = reader.cell("zones", line, row, "zone_name", str)
        if zone_id is None or name is None:
            continue
        if zone_id in found:
            reader.errors.append(LegacyError("zones", line, "id", f"zone {zone_id} repeats"))
            continue
        description = _text(row.get("description"))
        found[zone_id] = _Zone(f"{name} - {description}" if description else name)
    return found


def _prices(
    reader: _Reader, rate_zones: Iterable[Row], zones: dict[str, _Zone]
) -> dict[str, list[_Price]]:
    found: dict[str, list[_Price]] = {}
    for line, row in enumerate(rate_zones, 2):
        field = "rate_per_minute" if row.get("rate_per_second") in (None, "") else "rate_per_second"
        zone_id = reader.cell("rate_zones", line, row, "zone_id", str)
        per_minute = reader.cell("rate_zones", line, row, field, per_second_to_minute)
        increment = reader.cell("rate_zones", line, row, "billing_increment", parse_increment, 60)
        priority = reader.cell("rate_zones", line, row, "priority", parse_priority, 0)
        enabled = reader.cell("rate_zones", line, row, "enabled", parse_enabled, True)
        timing = reader.cell("rate_zones", line, row, "timing", parse_timing_name, "")
        minimum = reader.cell("rate_zones", line, row, "minimum_charge", parse_money, Decimal(0))
        free = reader.cell("rate_zones", line, row, "free_seconds", parse_seconds, 0)
        if zone_id is not None and zone_id not in zones:
            reader.errors.append(LegacyError("rate_zones", line, "zone_id", f"no zone {zone_id}"))
            continue
        parts = (zone_id, per_minute, increment, priority, timing, minimum, free)
        if zone_id is None or any(p is None for p in parts):
            continue
        if not enabled:
            continue
        assert per_minute is not None and increment is not None and priority is not None
        assert minimum is not None and free is not None
        found.setdefault(zone_id, []).append(
            _Price(per_minute, increment, priority, timing or None, minimum, free)
        )
    return found


def convert(
    zones: Iterable[Row], prefixes: Iterable[Row], rate_zones: Iterable[Row], start: datetime
) -> tuple[list[RateRow], list[LegacyError]]:
    """The rate rows of the legacy tables (line = the prefix's line), and every error.

    Lines count from 2 (line 1 is a CSV header; for JSON arrays, item i is line i + 2).
    Rows of a result with errors must not be imported.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    reader = _Reader()
    zone_of = _zones(reader, zones)
    prices = _prices(reader, rate_zones, zone_of)
    rows: list[RateRow] = []
    for line, row in enumerate(prefixes, 2):
        zone_id = reader.cell("prefixes", line, row, "zone_id", str)
        prefix = reader.cell("prefixes", line, row, "prefix", parse_prefix)
        enabled = reader.cell("prefixes", line, row, "enabled", parse_enabled, True)
        if zone_id is not None and zone_id not in zone_of:
            reader.errors.append(LegacyError("prefixes", line, "zone_id", f"no zone {zone_id}"))
            continue
        if zone_id is None or prefix is None or not enabled:
            continue
        for price in prices.get(zone_id, []):
            rows.append(
                RateRow(
                    prefix=prefix,
                    name=zone_of[zone_id].name,
                    rate_per_minute=price.per_minute,
                    connection_fee=Decimal(0),
                    initial_increment=price.increment,
                    increment=price.increment,
                    effective_start=start,
                    effective_end=None,
                    priority=price.priority,
                    enabled=True,
                    timing=price.timing,
                    minimum_charge=price.minimum_charge,
                    free_seconds=price.free_seconds,
                    line=line,
                )
            )
    return rows, reader.errors
