"""Report figures from traffic aggregates (pure; no Flask, SQL or Redis).

Rounding, all half-up and only for display: minutes to 2 decimals (billsec / 60),
ASR (answered / calls, in percent) to 2 decimals, ACD (answered billsec / answered
calls, in seconds) to 1 decimal. Revenue is the exact NUMERIC sum of the CDR costs
(4 decimals). Money and ratios are decimal strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sidecar.jsonfmt import rfc3339

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")
_SIXTY = Decimal(60)
_HUNDRED = Decimal(100)


def figures(calls: int, answered: int, billsec: int, revenue: Decimal) -> dict[str, object]:
    minutes = (Decimal(billsec) / _SIXTY).quantize(_CENT, ROUND_HALF_UP)
    asr = (Decimal(answered) * _HUNDRED / calls).quantize(_CENT, ROUND_HALF_UP) if calls else None
    acd = (Decimal(billsec) / answered).quantize(_TENTH, ROUND_HALF_UP) if answered else None
    return {
        "calls": calls,
        "answered": answered,
        "minutes": str(minutes),
        "revenue": str(revenue),
        "asr_percent": None if asr is None else str(asr),
        "acd_seconds": None if acd is None else str(acd),
    }


def _key(value: object) -> object:
    return rfc3339(value) if isinstance(value, datetime) else value


def report_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, object]]:
    return [
        {
            "key": _key(row["key"]),
            "label": row["label"],
            **figures(
                int(row["calls"]),
                int(row["answered"]),
                int(row["billsec"]),
                Decimal(row["revenue"]),
            ),
        }
        for row in rows
    ]


def totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, object]:
    calls = answered = billsec = 0
    revenue = Decimal("0.0000")
    for row in rows:
        calls += int(row["calls"])
        answered += int(row["answered"])
        billsec += int(row["billsec"])
        revenue += Decimal(row["revenue"])
    return figures(calls, answered, billsec, revenue)
