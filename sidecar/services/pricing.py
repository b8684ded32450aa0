"""A call's price as CDR intake, CUCM billing and rerating store it.

``price`` rates one answered call through its plan's chain (``Rating``) and splits it at
rate boundaries; ``cdr_fields`` are the CDR columns that come from the result. A span is
kept as ``{"rate_id", "start", "seconds", "rate_per_minute", "amount"}``: ``start`` in
RFC 3339 UTC, money as decimal strings, ``amount`` = seconds * rate_per_minute / 60
rounded half-up to 6 decimals for display (the cost adds the exact amounts, and the
connection fee, and rounds once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sidecar.jsonfmt import rfc3339
from sidecar.rating import Charge, Rate, Rating

SPAN_AMOUNT_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Priced:
    rate: Rate  # the rate at answer: increments, fee, minimum charge, free seconds
    charge: Charge


def price(rating: Rating, number: str, answer: datetime, billsec: int) -> Priced | None:
    """The call's price, or None when no rate of the chain applies at answer."""
    schedule = rating.schedule(number, answer, max(billsec, 1))
    if schedule is None:
        return None
    return Priced(schedule.first, schedule.price(billsec))


def spans_json(charge: Charge) -> list[dict[str, Any]]:
    return [
        {
            "rate_id": span.rate.id,
            "start": rfc3339(span.start),
            "seconds": span.seconds,
            "rate_per_minute": str(span.rate.rate_per_minute),
            "amount": str(span.amount.quantize(SPAN_AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)),
        }
        for span in charge.spans
    ]


def notes(priced: Priced) -> list[str]:
    """What the billing note says about how the cost came about, beyond the rate."""
    charge, rate = priced.charge, priced.rate
    found = []
    if charge.free:
        found.append(f"free: within the rate's {rate.free_seconds} free seconds")
    if charge.minimum_applied:
        found.append(f"minimum charge {rate.minimum_charge} applied")
    if len(charge.spans) > 1:
        found.append(f"priced in {len(charge.spans)} spans")
    return found


def cdr_fields(priced: Priced | None) -> dict[str, Any]:
    """The rate columns of a CDR row (all None when there was no rate)."""
    if priced is None:
        return dict.fromkeys(
            ("rate_id", "rate_prefix", "rate_per_minute", "connection_fee", "billed_seconds",
             "spans"),
        )  # fmt: skip
    rate = priced.rate
    return {
        "rate_id": rate.id,
        "rate_prefix": rate.prefix,
        "rate_per_minute": rate.rate_per_minute,
        "connection_fee": rate.connection_fee,
        "billed_seconds": priced.charge.billed_seconds,
        "spans": spans_json(priced.charge),
    }
