"""A plan with its fallback: the plan's rates, then its parent's, and so on.

A number's rate at an instant comes from the first plan of the chain that has one: a
plan's parent is asked only when none of the plan's own rates applies (no prefix of the
number, or none of its rates in effect and in its timing then).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sidecar.rating.lpm import RateIndex
from sidecar.rating.model import Rate
from sidecar.rating.numbers import NumberRule
from sidecar.rating.spans import SECOND, Schedule, build_schedule


class Rating:
    __slots__ = ("indexes",)

    def __init__(self, indexes: Sequence[RateIndex]) -> None:
        if not indexes:
            raise ValueError("a rating needs at least its own plan's index")
        self.indexes = tuple(indexes)

    @property
    def plan_id(self) -> int:
        return self.indexes[0].meta.plan_id

    @property
    def callee_rules(self) -> tuple[NumberRule, ...]:
        return self.indexes[0].meta.callee_rules

    @property
    def caller_rules(self) -> tuple[NumberRule, ...]:
        return self.indexes[0].meta.caller_rules

    def lookup(self, number: str, at: datetime) -> Rate | None:
        for index in self.indexes:
            rate = index.lookup(number, at)
            if rate is not None:
                return rate
        return None

    def candidates(self, number: str) -> list[Rate]:
        """Every rate of the chain that may price ``number``, in lookup order."""
        found: list[Rate] = []
        for index in self.indexes:
            found.extend(index.candidates(number))
        return found

    def steady(self, start: datetime, end: datetime) -> bool:
        return all(index.steady(start, end) for index in self.indexes)

    def schedule(self, number: str, answer: datetime, seconds: int) -> Schedule | None:
        """The rates of a call to ``number`` answered at ``answer`` over ``seconds``
        seconds; None when no rate applies at answer. One lookup when nothing in the
        chain can change within the call (the usual case)."""
        for index in self.indexes:  # the usual case, without datetime arithmetic
            if not index.settled(answer):
                break
        else:
            rate = self.lookup(number, answer)
            return None if rate is None else Schedule(answer, rate)
        if self.steady(answer, answer + seconds * SECOND):
            rate = self.lookup(number, answer)
            return None if rate is None else Schedule(answer, rate)
        return build_schedule(self.candidates(number), answer, seconds)
