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

import io
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
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


# (packed, name): packed is "id prefix rate_per_minute connection_fee initial_increment
#  increment effective_start effective_end priority", space-separated PostgreSQL text, the two
#  instants as integer microseconds since the Unix epoch (effective_end empty when open)
TextRateRow = tuple[str, str]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _tariff_of_text(key: str) -> _Tariff:
    rpm, fee, first, step, start, end, priority = key.split(" ")
    return _Tariff(
        Decimal(rpm), Decimal(fee), int(first), int(step),
        _EPOCH + timedelta(microseconds=int(start)),
        None if not end else _EPOCH + timedelta(microseconds=int(end)),
        int(priority),
    )  # fmt: skip


def _split_text(rows: Iterable[TextRateRow]) -> Iterator[tuple[str, str, str, str]]:
    for packed, name in rows:
        rid, prefix, tariff = packed.split(" ", 2)
        yield rid, prefix, name, tariff


class RateIndex:
    __slots__ = ("_group_of_key", "_ids", "_name_of", "_names", "_offsets", "_tariff_of",
                 "_tariffs", "_trie", "size", "version")  # fmt: skip

    def __init__(self, rates: Iterable[Rate] = (), version: int = 0) -> None:
        self._from_typed(sorted((_row_of(r) for r in rates), key=_preference), version)

    @classmethod
    def from_rows(cls, rows: Iterable[RateRow], version: int = 0) -> RateIndex:
        """Build straight from database rows, without making a ``Rate`` per row.

        The rows must come grouped by prefix and, within a prefix, in preference order
        (priority descending, then effective_start descending), as ``ORDER BY prefix,
        priority DESC, effective_start DESC`` gives them.
        """
        index = cls.__new__(cls)
        index._from_typed(rows, version)
        return index

    @classmethod
    def from_text_rows(cls, rows: Iterable[TextRateRow], version: int = 0) -> RateIndex:
        """Build from rows of text (see ``TextRateRow``), grouped and ordered as for
        ``from_rows``. The fast path for big plans: a tariff's text is turned into
        ``Decimal``/``datetime`` once per distinct tariff, not once per row."""
        index = cls.__new__(cls)
        index._build(_split_text(rows), _tariff_of_text, version)  # type: ignore[arg-type]
        return index

    def _from_typed(self, rows: Iterable[RateRow], version: int) -> None:
        typed = (
            (rid, prefix, name, _Tariff(rpm, fee, first, step, start, end, priority))
            for rid, prefix, name, rpm, fee, first, step, start, end, priority, enabled in rows
            if enabled
        )
        self._build(typed, lambda t: t, version)  # type: ignore[arg-type,return-value]

    def _build(
        self,
        rows: Iterable[tuple[int | str, str, str, Hashable]],
        make_tariff: Callable[[Hashable], _Tariff],
        version: int,
    ) -> None:
        tariff_ids: dict[Hashable, int] = {}
        name_ids: dict[str, int] = {}
        ids, tariff_of, name_of = array("q"), array("i"), array("i")
        # rows of the g-th distinct prefix are positions offsets[g] .. offsets[g + 1] - 1
        offsets = array("i")
        # one text of all prefixes, a line each: a list of a million str would be the
        # build's biggest transient (~60 MB) and leave that much heap behind in each worker
        prefixes = io.StringIO()
        groups = 0
        last = None
        add_id, add_tariff, add_name = ids.append, tariff_of.append, name_of.append
        new_tariff, new_name = tariff_ids.setdefault, name_ids.setdefault
        ascending = True
        for rid, prefix, name, tariff in rows:
            if prefix != last:
                if last is not None and prefix < last:
                    ascending = False
                if "\n" in prefix:
                    raise ValueError(f"not a prefix: {prefix[:40]!r}")
                offsets.append(len(ids))
                prefixes.write(prefix + "\n")
                groups += 1
                last = prefix
            add_tariff(new_tariff(tariff, len(tariff_ids)))
            add_name(new_name(name, len(name_ids)))
            add_id(int(rid))
        offsets.append(len(ids))
        self._trie, self._group_of_key = _key_groups(prefixes.getvalue(), groups, ascending)
        del prefixes
        self._offsets = offsets
        self._ids, self._tariff_of, self._name_of = ids, tariff_of, name_of
        self._tariffs = [make_tariff(t) for t in tariff_ids]
        self._names = list(name_ids)
        self.size = len(ids)
        self.version = version

    def lookup(self, number: str, at: datetime) -> Rate | None:
        """The rate for ``number`` at instant ``at``, or None when no rate applies."""
        # already digits (what authorization passes) skips the per-character rebuild
        digits = number if number.isascii() and number.isdigit() else normalize_number(number)
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


def _lines(text: str) -> Iterator[str]:
    return (line[:-1] for line in io.StringIO(text))


def _key_groups(prefixes: str, count: int, ascending: bool) -> tuple[marisa_trie.Trie, array[int]]:
    """The trie of ``prefixes`` (``count`` lines) and, per trie key id, the line number of
    that prefix.

    With sorted prefixes the trie is built in label order, whose iteration is
    lexicographic, so the positions come from one walk instead of a lookup per key.
    """
    order = marisa_trie.LABEL_ORDER if ascending else marisa_trie.DEFAULT_ORDER
    trie = marisa_trie.Trie(_lines(prefixes), order=order)
    if len(trie) != count:
        raise ValueError("rows are not grouped by prefix")
    group_of_key = array("i", bytes(len(trie) * array("i").itemsize))
    if ascending:
        walk = zip(trie.iteritems(), _lines(prefixes), strict=True)
        for group, ((key, key_id), prefix) in enumerate(walk):
            if key != prefix:  # never expected; the slow way stays correct
                return _key_groups(prefixes, count, False)
            group_of_key[key_id] = group
    else:
        key_of = trie.key_id
        for group, prefix in enumerate(_lines(prefixes)):
            group_of_key[key_of(prefix)] = group
    return trie, group_of_key
