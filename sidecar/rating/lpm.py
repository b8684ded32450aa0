"""Longest-prefix-match index of one rate plan.

Compact by design, because a plan may hold 1,000,000 prefixes and every sidecar worker
holds its own index: the prefixes live in a marisa trie (a few MB), and each rate is a
row of three integer columns (id, tariff, name) pointing into de-duplicated tariffs
(price, fee, increments, validity, priority) and names. ``Rate`` objects are only made
for the answer of a lookup.

Rows of one prefix are stored together, ordered by priority (high first) and then
effective_start (late first); a lookup walks the number's prefixes from the longest
down and returns the first row in effect at the instant asked. The index is immutable:
a changed plan is rebuilt and swapped whole, so a lookup never sees a half-built one.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import marisa_trie

from sidecar.rating.model import Rate
from sidecar.rating.numbers import normalize_number


class _Tariff(NamedTuple):
    rate_per_minute: Decimal
    connection_fee: Decimal
    initial_increment: int
    increment: int
    effective_start: datetime
    effective_end: datetime | None
    priority: int


# (id, prefix, name, rate_per_minute, connection_fee, initial_increment, increment,
#  effective_start, effective_end, priority, enabled): the column order of the rates table
RateRow = tuple[int, str, str, Decimal, Decimal, int, int, datetime, datetime | None, int, bool]


def _row_of(rate: Rate) -> RateRow:
    return (
        rate.id, rate.prefix, rate.name, rate.rate_per_minute, rate.connection_fee,
        rate.initial_increment, rate.increment, rate.effective_start, rate.effective_end,
        rate.priority, rate.enabled,
    )  # fmt: skip


def _preference(row: RateRow) -> tuple[str, int, float]:
    return (row[1], -row[9], -row[7].timestamp())


class RateIndex:
    __slots__ = ("_group_of_key", "_ids", "_name_of", "_names", "_offsets", "_tariff_of",
                 "_tariffs", "_trie", "size", "version")  # fmt: skip

    def __init__(self, rates: Iterable[Rate] = (), version: int = 0) -> None:
        self._build(sorted((_row_of(r) for r in rates), key=_preference), version)

    @classmethod
    def from_rows(cls, rows: Iterable[RateRow], version: int = 0) -> RateIndex:
        """Build straight from database rows, without making a ``Rate`` per row.

        The rows must come grouped by prefix and, within a prefix, in preference order
        (priority descending, then effective_start descending), as ``ORDER BY prefix,
        priority DESC, effective_start DESC`` gives them.
        """
        index = cls.__new__(cls)
        index._build(rows, version)
        return index

    def _build(self, rows: Iterable[RateRow], version: int) -> None:
        tariff_ids: dict[_Tariff, int] = {}
        name_ids: dict[str, int] = {}
        ids, tariff_of, name_of = array("q"), array("l"), array("l")
        # rows of the g-th distinct prefix are positions offsets[g] .. offsets[g + 1] - 1
        offsets = array("l")
        prefixes: list[str] = []
        last = None
        for rid, prefix, name, rpm, fee, first, step, start, end, priority, enabled in rows:
            if not enabled:
                continue
            if prefix != last:
                offsets.append(len(ids))
                prefixes.append(prefix)
                last = prefix
            tariff = _Tariff(rpm, fee, first, step, start, end, priority)
            tariff_of.append(tariff_ids.setdefault(tariff, len(tariff_ids)))
            name_of.append(name_ids.setdefault(name, len(name_ids)))
            ids.append(rid)
        offsets.append(len(ids))
        self._trie = marisa_trie.Trie(prefixes)
        if len(self._trie) != len(prefixes):
            raise ValueError("rows are not grouped by prefix")
        group_of_key = array("l", bytes(self._trie.__len__() * array("l").itemsize))
        for group, prefix in enumerate(prefixes):
            group_of_key[self._trie[prefix]] = group
        self._group_of_key, self._offsets = group_of_key, offsets
        self._ids, self._tariff_of, self._name_of = ids, tariff_of, name_of
        self._tariffs = list(tariff_ids)
        self._names = list(name_ids)
        self.size = len(ids)
        self.version = version

    def lookup(self, number: str, at: datetime) -> Rate | None:
        """The rate for ``number`` at instant ``at``, or None when no rate applies."""
        digits = normalize_number(number)
        if not digits:
            return None
        matches: list[tuple[str, int]] = list(self._trie.iter_prefixes_with_ids(digits))
        offsets, tariffs, tariff_of = self._offsets, self._tariffs, self._tariff_of
        for prefix, key in reversed(matches):
            group = self._group_of_key[key]
            for pos in range(offsets[group], offsets[group + 1]):
                t = tariffs[tariff_of[pos]]
                if t.effective_start <= at and (t.effective_end is None or at < t.effective_end):
                    return Rate(
                        self._ids[pos], prefix, self._names[self._name_of[pos]],
                        t.rate_per_minute, t.connection_fee, t.initial_increment, t.increment,
                        t.effective_start, t.effective_end, t.priority, True,
                    )  # fmt: skip
        return None

    def __len__(self) -> int:
        return self.size
