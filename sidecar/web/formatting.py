"""How the dashboard shows numbers (pure; no Flask, SQL or Redis).

Money is never rounded for display: amounts are exact to 4 decimals (NUMERIC(18,4)), shown
with thousands separators and trailing zeros trimmed down to 2 decimals ("1,234.50",
"0.0125"); rates (6 decimals) keep theirs the same way. Durations are h:mm:ss.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation


def money(value: object, currency: str = "") -> str:
    """``Decimal("1234.5000")`` -> ``"1,234.50"``; None or "" -> an en dash."""
    if value is None or value == "":
        return "–"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    grouped = f"{int(whole):,}"
    shown = f"{sign}{grouped}.{fraction}"
    return f"{shown} {currency}" if currency else shown


def duration(seconds: object) -> str:
    """Whole seconds as h:mm:ss (``3725`` -> ``"1:02:05"``); negatives show as 0:00:00."""
    if seconds is None or seconds == "":
        return "–"
    try:
        total = max(int(Decimal(str(seconds))), 0)
    except (InvalidOperation, ValueError):
        return str(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def count(value: object) -> str:
    if value is None or value == "":
        return "–"
    return f"{int(str(value)):,}"


def percent(value: object) -> str:
    return "–" if value is None or value == "" else f"{value} %"


def timestamp(value: object) -> str:
    """A datetime in UTC as ``2026-11-23 04:05:06`` (the dashboard's one time zone)."""
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC) if value.tzinfo else value
        return stamp.strftime("%Y-%m-%d %H:%M:%S")
    return "–" if value is None else str(value)
