"""Server-side inline SVG bar chart of today's traffic per hour (pure).

Bars are sized from Decimal values so no float ever carries money; only the SVG
coordinates (pixels) are rounded, to 1 decimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

WIDTH = 720
HEIGHT = 180
LABEL_ROOM = 18
_PIXEL = Decimal("0.1")


@dataclass(frozen=True)
class Bar:
    hour: int
    value: Decimal
    x: Decimal
    y: Decimal
    width: Decimal
    height: Decimal


def hourly_bars(rows: Sequence[Mapping[str, object]], field: str) -> list[Bar]:
    """24 bars (hour 0-23, UTC) of ``field`` from report rows whose ``key`` is the hour
    (an ISO string ending in Z, as the report service gives it); missing hours are 0."""
    values = {h: Decimal(0) for h in range(24)}
    for row in rows:
        key = str(row["key"]).removesuffix("Z")
        hour = datetime.fromisoformat(key).hour
        values[hour] = Decimal(str(row[field]))
    top = max(values.values())
    slot = Decimal(WIDTH) / 24
    usable = Decimal(HEIGHT - LABEL_ROOM)
    bars = []
    for hour, value in values.items():
        height = (value / top * usable) if top > 0 else Decimal(0)
        bars.append(
            Bar(
                hour=hour,
                value=value,
                x=(slot * hour + 2).quantize(_PIXEL, ROUND_HALF_UP),
                y=(usable - height).quantize(_PIXEL, ROUND_HALF_UP),
                width=(slot - 4).quantize(_PIXEL, ROUND_HALF_UP),
                height=height.quantize(_PIXEL, ROUND_HALF_UP),
            )
        )
    return bars
