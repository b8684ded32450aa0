"""Validation warnings for a rate plan: rates that are redundant or can never be used.

Pure functions over :class:`sidecar.rating.Rate`; the selection rule they reason about is
the one of the rating core (longest prefix, then higher priority, then later
effective_start). Warnings never block an import; they tell the admin what to clean up.

- ``same_price_as_parent``: an enabled rate whose longest enabled parent prefix has a
  rate with the same tariff (price, fee, increments) over an overlapping window; the
  longer prefix changes nothing for those calls.
- ``never_in_effect``: an enabled rate whose whole window is covered by enabled rates of
  the same prefix that beat it (higher priority, or equal priority and a later start)
  at every instant it could apply (no timing, or its own), so no call can ever be rated
  by it.
- ``disabled``: listed so an import of disabled rows is visible (informational).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from sidecar.rating import Rate


@dataclass(frozen=True, slots=True)
class RateWarning:
    kind: str
    rate_id: int
    prefix: str
    message: str
    related_rate_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "rate_id": self.rate_id,
            "prefix": self.prefix,
            "message": self.message,
            "related_rate_id": self.related_rate_id,
        }


def _tariff(rate: Rate) -> tuple[object, ...]:
    return (
        rate.rate_per_minute, rate.connection_fee, rate.initial_increment, rate.increment,
        rate.timing, rate.minimum_charge, rate.free_seconds,
    )  # fmt: skip


def _overlap(a: Rate, b: Rate) -> bool:
    a_before_b_ends = b.effective_end is None or a.effective_start < b.effective_end
    b_before_a_ends = a.effective_end is None or b.effective_start < a.effective_end
    return a_before_b_ends and b_before_a_ends


def _beats(winner: Rate, loser: Rate) -> bool:
    if winner.priority != loser.priority:
        return winner.priority > loser.priority
    return winner.effective_start > loser.effective_start


def covered(
    start: datetime, end: datetime | None, spans: list[tuple[datetime, datetime | None]]
) -> bool:
    """Whether the union of the half-open ``spans`` covers ``[start, end)`` (None = open end)."""
    reached = start
    for span_start, span_end in sorted(spans, key=lambda s: s[0]):
        if span_start > reached:
            return False
        if span_end is None:
            return True
        reached = max(reached, span_end)
        if end is not None and reached >= end:
            return True
    return False


def plan_warnings(
    rates_by_prefix: Iterable[Rate], limit: int = 1000
) -> tuple[list[RateWarning], int]:
    """The first ``limit`` warnings of the plan and how many there are.

    ``rates_by_prefix`` must come ordered by prefix (byte order, e.g. ``ORDER BY prefix
    COLLATE "C"``); it is consumed in one pass holding only one prefix's rates and those
    of its ancestors, so a plan of a million rates is checked in bounded memory.
    """
    found: list[RateWarning] = []
    count = 0
    ancestors: list[tuple[str, list[Rate]]] = []  # enabled rates on the path to the root
    previous = ""
    for prefix, rates in groupby(rates_by_prefix, key=lambda r: r.prefix):
        if prefix <= previous:
            raise ValueError(f"rates must be ordered by prefix ({prefix} after {previous})")
        previous = prefix
        group = list(rates)
        enabled = [r for r in group if r.enabled]
        while ancestors and not prefix.startswith(ancestors[-1][0]):
            ancestors.pop()
        parent = ancestors[-1][1] if ancestors else []
        for warning in _prefix_warnings(prefix, group, enabled, parent):
            count += 1
            if len(found) < limit:
                found.append(warning)
        if enabled:
            ancestors.append((prefix, enabled))
    return found, count


def _prefix_warnings(
    prefix: str, group: list[Rate], enabled: list[Rate], parent: list[Rate]
) -> Iterator[RateWarning]:
    for rate in sorted(group, key=lambda r: (r.effective_start, r.id)):
        if not rate.enabled:
            yield RateWarning("disabled", rate.id, prefix, f"rate {rate.id} is disabled")
            continue
        hidden = _never_in_effect(rate, enabled)
        if hidden is not None:
            yield hidden
            continue
        for other in parent:
            if _tariff(other) == _tariff(rate) and _overlap(rate, other):
                yield RateWarning(
                    "same_price_as_parent",
                    rate.id,
                    prefix,
                    f"prefix {prefix} has the same price as its parent prefix"
                    f" {other.prefix} (rate {other.id}); it changes nothing",
                    other.id,
                )
                break


def _never_in_effect(rate: Rate, same_prefix: list[Rate]) -> RateWarning | None:
    winners = [
        o
        for o in same_prefix
        if o.id != rate.id
        and _beats(o, rate)
        and _overlap(o, rate)
        and (o.timing is None or o.timing == rate.timing)  # it applies whenever rate would
    ]
    if not winners:
        return None
    spans = [(o.effective_start, o.effective_end) for o in winners]
    if not covered(rate.effective_start, rate.effective_end, spans):
        return None
    ids = ", ".join(str(o.id) for o in sorted(winners, key=lambda o: o.id))
    return RateWarning(
        "never_in_effect",
        rate.id,
        rate.prefix,
        f"rate {rate.id} is never used: rate(s) {ids} of the same prefix win over its whole window",
        min(o.id for o in winners),
    )
