"""Call cost and the longest call a sum of money pays for.

Rounding: a call's cost is ``connection_fee + billed_seconds * rate_per_minute / 60``
computed exactly in Decimal and then rounded once, half-up, to 4 decimals (COST_QUANTUM).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sidecar.rating.model import Rate

COST_QUANTUM = Decimal("0.0001")
_SIXTY = Decimal(60)


def billed_seconds(billsec: int, initial_increment: int, increment: int) -> int:
    """Seconds charged for ``billsec`` seconds of talk time (0 when the call was not answered)."""
    if billsec <= 0:
        return 0
    if billsec <= initial_increment:
        return initial_increment
    extra = billsec - initial_increment
    steps = -(-extra // increment)  # ceil for positive ints
    return initial_increment + steps * increment


def call_cost(rate: Rate, billsec: int) -> Decimal:
    """Cost of an answered call of ``billsec`` seconds; no fee on unanswered calls."""
    billed = billed_seconds(billsec, rate.initial_increment, rate.increment)
    if billed == 0:
        return Decimal("0.0000")
    raw = rate.connection_fee + Decimal(billed) * rate.rate_per_minute / _SIXTY
    return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def max_duration_for(rate: Rate, amount: Decimal, cap_seconds: int) -> int:
    """The longest billsec (at most ``cap_seconds``) whose cost fits in ``amount``.

    0 when even the first increment does not fit. The cost only changes at increment
    boundaries, so the answer is always ``initial_increment + k * increment`` or the cap.
    """
    if cap_seconds <= 0 or call_cost(rate, 1) > amount:
        return 0
    if rate.rate_per_minute == 0:
        return cap_seconds
    initial = rate.initial_increment
    if initial >= cap_seconds:
        return cap_seconds
    per_step = Decimal(rate.increment) * rate.rate_per_minute / _SIXTY
    base = rate.connection_fee + Decimal(initial) * rate.rate_per_minute / _SIXTY
    steps = int((amount - base) / per_step) if amount > base else 0
    # the estimate ignores rounding of the final cost: settle it with exact costs
    while steps > 0 and call_cost(rate, initial + steps * rate.increment) > amount:
        steps -= 1
    while call_cost(rate, initial + (steps + 1) * rate.increment) <= amount:
        steps += 1
        if initial + steps * rate.increment >= cap_seconds:
            return cap_seconds
    return min(cap_seconds, initial + steps * rate.increment)
