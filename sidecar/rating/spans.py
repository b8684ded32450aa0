"""Calls whose rate changes while they are up, priced in spans.

The rule (README, Billing rules):

- second ``k`` of a call (``k = 0, 1, ...``) runs from ``answer + k`` seconds and is priced
  at the rate that applies at that instant; a span is a run of seconds at one rate (a
  second with no rate at all keeps the rate before it);
- the billed duration comes from the increments of the rate at answer, and so do the
  connection fee, the minimum charge and the free seconds;
- the seconds that rounding adds (billed - talked) belong to the last span;
- cost = connection fee + the sum of each span's ``seconds * rate_per_minute / 60``,
  exact, raised to the minimum charge when below it, rounded once, half-up, to 4 decimals.

With no change inside the call this is exactly ``call_cost`` of the rate at answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from sidecar.rating.cost import (
    COST_QUANTUM,
    FREE,
    billed_seconds,
    call_cost,
    charged_seconds,
    max_duration_for,
)
from sidecar.rating.model import Rate

SECOND = timedelta(seconds=1)
_SIXTY = Decimal(60)


def select(candidates: Iterable[Rate], at: datetime) -> Rate | None:
    """The first of ``candidates`` (in lookup order) that applies at ``at``."""
    for rate in candidates:
        if rate.applies(at):
            return rate
    return None


def boundaries(candidates: Iterable[Rate], start: datetime, end: datetime) -> list[datetime]:
    """Instants in ``(start, end)`` at which the choice among ``candidates`` may change:
    their effective starts and ends and the edges of their timings."""
    found: set[datetime] = set()
    timings = set()
    for rate in candidates:
        for instant in (rate.effective_start, rate.effective_end):
            if instant is not None and start < instant < end:
                found.add(instant)
        if rate.timing is not None:
            timings.add(rate.timing)
    for timing in timings:
        found.update(timing.edges(start, end))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Span:
    rate: Rate
    offset: int  # the call's second at which it starts
    start: datetime  # answer + offset
    seconds: int  # billed seconds in it (the last span holds what rounding adds)

    @property
    def amount(self) -> Decimal:
        """``seconds * rate_per_minute / 60``, unrounded."""
        return Decimal(self.seconds) * self.rate.rate_per_minute / _SIXTY


@dataclass(frozen=True, slots=True)
class Charge:
    cost: Decimal
    billed_seconds: int  # 0 within the free seconds
    spans: tuple[Span, ...]  # empty when nothing is charged
    free: bool = False  # answered, but within the free seconds
    minimum_applied: bool = False


class Schedule(NamedTuple):
    """The rates over a call answered at ``answer``: ``first`` from second 0, then each
    ``(k, rate)`` of ``changes`` from second ``k`` (ascending, ``k >= 1``, each rate
    different from the one before it). A named tuple: authorization makes one per call."""

    answer: datetime
    first: Rate
    changes: tuple[tuple[int, Rate], ...] = ()

    def price(self, billsec: int) -> Charge:
        """The call's cost and spans for ``billsec`` seconds of talk."""
        first = self.first
        if billsec <= first.free_seconds:
            return Charge(FREE, 0, (), free=billsec > 0)
        billed = billed_seconds(billsec, first.initial_increment, first.increment)
        starts = [(0, first), *((k, r) for k, r in self.changes if k < billsec)]
        spans = []
        for n, (offset, rate) in enumerate(starts):
            end = starts[n + 1][0] if n + 1 < len(starts) else billed
            spans.append(Span(rate, offset, self.answer + offset * SECOND, end - offset))
        total = sum((Decimal(s.seconds) * s.rate.rate_per_minute for s in spans), Decimal(0))
        raw = first.connection_fee + total / _SIXTY
        minimum = raw < first.minimum_charge
        if minimum:
            raw = first.minimum_charge
        cost = raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
        return Charge(cost, billed, tuple(spans), minimum_applied=minimum)

    def cost(self, billsec: int) -> Decimal:
        if not self.changes:
            return call_cost(self.first, billsec)
        return self._costs().at(billsec)

    def billed(self, billsec: int) -> int:
        return charged_seconds(self.first, billsec)

    def shortest_charge(self) -> Decimal:
        """What the shortest charged call (one second past the free seconds) costs."""
        return self.cost(self.first.free_seconds + 1)

    def max_cost(self, seconds: int) -> Decimal:
        """The most any call of at most ``seconds`` seconds costs (a later, cheaper span
        can make a longer call cost less than a shorter one)."""
        if not self.changes:
            return call_cost(self.first, seconds)
        return self._costs().most(seconds)

    def max_duration(self, amount: Decimal, cap_seconds: int) -> int:
        """The longest billsec (at most ``cap_seconds``) such that it and every shorter
        call cost at most ``amount``."""
        if not self.changes:
            return max_duration_for(self.first, amount, cap_seconds)
        return self._costs().longest(amount, cap_seconds)

    def _costs(self) -> _Costs:
        return _Costs(self)


class _Costs:
    """Cost as a function of billsec, in segments: billsec ``b`` falls in segment ``s``
    when its last real second (``b - 1``) lies in it; within a segment the cost never
    decreases with ``b``."""

    def __init__(self, schedule: Schedule) -> None:
        self.first = first = schedule.first
        self.starts = [0, *(k for k, _ in schedule.changes)]
        rates = [first, *(r for _, r in schedule.changes)]
        self.rpm = [r.rate_per_minute for r in rates]
        self.before: list[Decimal] = [Decimal(0)]  # sum of seconds * rpm of earlier segments
        for n in range(1, len(self.starts)):
            length = self.starts[n] - self.starts[n - 1]
            self.before.append(self.before[-1] + Decimal(length) * self.rpm[n - 1])

    def _segment(self, billsec: int) -> int:
        n = len(self.starts) - 1
        while self.starts[n] > billsec - 1:
            n -= 1
        return n

    def at(self, billsec: int) -> Decimal:
        first = self.first
        if billsec <= first.free_seconds:
            return FREE
        s = self._segment(billsec)
        billed = billed_seconds(billsec, first.initial_increment, first.increment)
        total = self.before[s] + Decimal(billed - self.starts[s]) * self.rpm[s]
        raw = first.connection_fee + total / _SIXTY
        if raw < first.minimum_charge:
            raw = first.minimum_charge
        return raw.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)

    def _ranges(self, cap: int) -> Sequence[tuple[int, int]]:
        """Per segment, the billsec range ``lo..hi`` (within ``free + 1 .. cap``) it covers."""
        low = self.first.free_seconds + 1
        out = []
        for n, start in enumerate(self.starts):
            hi = self.starts[n + 1] if n + 1 < len(self.starts) else cap
            lo, hi = max(start + 1, low), min(hi, cap)
            if lo <= hi:
                out.append((lo, hi))
        return out

    def most(self, seconds: int) -> Decimal:
        return max((self.at(hi) for _, hi in self._ranges(seconds)), default=FREE)

    def longest(self, amount: Decimal, cap: int) -> int:
        if cap <= 0:
            return 0
        for lo, hi in self._ranges(cap):
            if self.at(hi) <= amount:
                continue
            while lo < hi:  # the first billsec of the segment that costs too much
                mid = (lo + hi) // 2
                if self.at(mid) > amount:
                    hi = mid
                else:
                    lo = mid + 1
            return lo - 1
        return cap


def build_schedule(candidates: Sequence[Rate], answer: datetime, seconds: int) -> Schedule | None:
    """The schedule of a call answered at ``answer`` over its first ``seconds`` seconds,
    from the rates that may price its number (``Rating.candidates``); None when no rate
    applies at answer."""
    first = select(candidates, answer)
    if first is None:
        return None
    changes: list[tuple[int, Rate]] = []
    current = first
    offsets = sorted(
        {
            -((answer - b) // SECOND)
            for b in boundaries(candidates, answer, answer + seconds * SECOND)
        }
    )
    for k in offsets:
        if not 0 < k < seconds:
            continue
        rate = select(candidates, answer + k * SECOND) or current
        if rate.id != current.id:
            changes.append((k, rate))
            current = rate
    return Schedule(answer, first, tuple(changes))
