"""Cost of a call at one rate, and the longest call a sum of money pays for.

Rounding: a call's cost is ``connection_fee + billed_seconds * rate_per_minute / 60``
computed exactly in Decimal, raised to the rate's ``minimum_charge`` when below it, and
then rounded once, half-up, to 4 decimals (COST_QUANTUM). A call of at most the rate's
``free_seconds`` costs nothing (no fee, no minimum); a longer one is billed from second 0.
A call whose rate changes while it is up is priced by ``sidecar.rating.spans``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sidecar.rating.model import Rate

COST_QUANTUM = Decimal("0.0001")
FREE = Decimal("0.0000")
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


def charged_seconds(rate: Rate, billsec: int) -> int:
    """The seconds a call is billed for: 0 when unanswered or within its free seconds."""
    if billsec <= rate.free_seconds:
        return 0
    return billed_seconds(billsec, rate.initial_increment, rate.increment)


def call_cost(rate: Rate, billsec: int) -> Decimal:
    """Cost of an answered call of ``billsec`` seconds; no fee on unanswered calls."""
    if billsec <= rate.free_seconds:  # also unanswered (billsec 0)
        return FREE
    billed = billed_seconds(billsec, rate.initial_increment, rate.increment)
    raw = rate.connection_fee + Decimal(billed) * rate.rate_per_minute / _SIXTY
    if raw < rate.minimum_charge:
        raw = rate.minimum_charge
    return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def shortest_charge(rate: Rate) -> Decimal:
    """What the shortest call that is charged costs (one second past the free seconds):
    authorization asks at least this much of the account."""
    return call_cost(rate, rate.free_seconds + 1)


def max_duration_for(rate: Rate, amount: Decimal, cap_seconds: int) -> int:
    """The longest billsec (at most ``cap_seconds``) whose cost, and the cost of every
    shorter call, fits in ``amount``.

    The free seconds when even the first charged second does not fit (0 without free
    seconds). Past the free seconds the cost only changes at increment boundaries, so the
    answer is then always ``initial_increment + k * increment`` or the cap.
    """
    if cap_seconds <= 0:
        return 0
    free = rate.free_seconds
    if free >= cap_seconds:
        return cap_seconds
    if call_cost(rate, free + 1) > amount:
        return free
    if rate.rate_per_minute == 0:
        return cap_seconds
    initial = rate.initial_increment
    if initial >= cap_seconds:
        return cap_seconds
    per_step = Decimal(rate.increment) * rate.rate_per_minute / _SIXTY
    base = rate.connection_fee + Decimal(initial) * rate.rate_per_minute / _SIXTY
    steps = int((amount - base) / per_step) if amount > base else 0
    # the estimate ignores rounding and the minimum charge: settle it with exact costs
    # (past the free seconds the cost never decreases, and call_cost(free + 1) fits)
    while steps > 0 and call_cost(rate, initial + steps * rate.increment) > amount:
        steps -= 1
    while call_cost(rate, initial + (steps + 1) * rate.increment) <= amount:
        steps += 1
        if initial + steps * rate.increment >= cap_seconds:
            return cap_seconds
    return min(cap_seconds, initial + steps * rate.increment)
