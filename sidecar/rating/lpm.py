"""Longest-prefix-match index of one rate plan, shareable between processes.

A plan may hold 1,000,000 prefixes and every sidecar worker needs its index, so the
index is a handful of flat integer columns (see ``lpm_build``): sorted prefix keys, each
prefix's length, parent and rows, and per row the rate id and numbers of a
de-duplicated tariff (price, fee, increments, validity, priority) and name. Built once,
it is saved to a file that every worker on the host maps read-only (``save`` /
``load``), so the pages are shared. ``Rate`` objects are only made for the answer of a
lookup; a tariff or name is turned into Python values the first time a worker needs it.

Rows of one prefix are stored together, ordered by priority (high first) and then
effective_start (late first); a lookup walks the number's prefixes from the longest
down and returns the first row in effect at the instant asked. The index is immutable:
a changed plan is rebuilt and swapped whole, so a lookup never sees a half-built one.

A row may name a timing (peak hours, weekends, holidays): the walk then also skips rows
whose timing does not hold the instant. The file also keeps the plan's ``PlanMeta`` (time
zone, parent plan, timings, normalization rules) and every effective_start/effective_end
instant of its rows, so ``steady`` can tell in a bisection that a call keeps one rate.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple

from sidecar.rating import lpm_file
from sidecar.rating.lpm_build import KEY_DIGITS, SPAN, Builder, Columns, copy_unescape
from sidecar.rating.model import Rate
from sidecar.rating.numbers import normalize_number
from sidecar.rating.plan import PlanMeta
from sidecar.rating.timing import Timing


class _Tariff(NamedTuple):
    rate_per_minute: Decimal
    connection_fee: Decimal
    initial_increment: int
    increment: int
    effective_start: datetime
    effective_end: datetime | None
    priority: int
    timing: int | None  # the timing's id
    minimum_charge: Decimal
    free_seconds: int


# (id, prefix, name, rate_per_minute, connection_fee, initial_increment, increment,
#  effective_start, effective_end, priority, enabled, timing_id, minimum_charge,
#  free_seconds): the column order of the rates table
RateRow = tuple[
    int, str, str, Decimal, Decimal, int, int, datetime, datetime | None, int, bool,
    int | None, Decimal, int,
]  # fmt: skip


# a tariff as the last fields of a ``Rate``: the answer of a lookup is
# ``(id, prefix, name) + tail`` made a ``Rate`` without a call to its ``__new__``
_RateTail = tuple[
    Decimal, Decimal, int, int, datetime, datetime | None, int, bool, Timing | None, Decimal, int
]
_new_rate = tuple.__new__


def _row_of(rate: Rate) -> RateRow:
    return (
        rate.id, rate.prefix, rate.name, rate.rate_per_minute, rate.connection_fee,
        rate.initial_increment, rate.increment, rate.effective_start, rate.effective_end,
        rate.priority, rate.enabled, None if rate.timing is None else rate.timing.id,
        rate.minimum_charge, rate.free_seconds,
    )  # fmt: skip


def _preference(row: RateRow) -> tuple[str, int, float, int]:
    return (row[1], -row[9], -row[7].timestamp(), row[0])


# A tariff as text: "rate_per_minute connection_fee initial_increment increment
# effective_start effective_end priority timing minimum_charge free_seconds", the two
# instants as integer microseconds since the Unix epoch (effective_end empty when open),
# timing as its id (empty: none); the form ``from_text`` reads and files keep
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _tariff_of_text(text: str) -> _Tariff:
    rpm, fee, first, step, start, end, priority, timing, minimum, free = text.split(" ")
    return _Tariff(
        Decimal(rpm), Decimal(fee), int(first), int(step),
        _EPOCH + timedelta(microseconds=int(start)),
        None if not end else _EPOCH + timedelta(microseconds=int(end)),
        int(priority), int(timing) if timing else None, Decimal(minimum), int(free),
    )  # fmt: skip


def _text_of_tariff(key: Hashable) -> bytes:
    t: _Tariff = key  # type: ignore[assignment]  # what _typed_columns numbers
    end = "" if t.effective_end is None else str((t.effective_end - _EPOCH) // _MICROSECOND)
    start = (t.effective_start - _EPOCH) // _MICROSECOND
    timing = "" if t.timing is None else str(t.timing)
    return (
        f"{t.rate_per_minute} {t.connection_fee} {t.initial_increment} {t.increment}"
        f" {start} {end} {t.priority} {timing} {t.minimum_charge} {t.free_seconds}"
    ).encode()


def microseconds(at: datetime) -> int:
    """``at`` as integer microseconds since the Unix epoch (the files' instants)."""
    return (at - _EPOCH) // _MICROSECOND


def _typed_columns(rows: Iterable[RateRow], version: int, meta: PlanMeta) -> Columns:
    kept = [row for row in rows if row[10]]
    kept.sort(key=itemgetter(1))  # stable: the order within a prefix stays as given
    known = meta.timing_by_id()
    for row in kept:
        if row[11] is not None and row[11] not in known:
            raise ValueError(f"rate {row[0]} names timing {row[11]}, not one of its plan's")
    builder = Builder()
    builder.add(
        [row[0] for row in kept],
        [row[1].encode() for row in kept],
        [_Tariff(*row[3:10], *row[11:14]) for row in kept],
        [row[2] for row in kept],
    )
    return builder.finish(version, _text_of_tariff, lambda name: str(name).encode(), meta.as_json())


def _meta_with(meta: PlanMeta | None, rates: Sequence[Rate]) -> PlanMeta:
    """``meta`` with the timings ``rates`` name added (rates built in memory carry them);
    without ``meta``, the plan's time zone is theirs. A plan's timings share its zone."""
    timings = {r.timing.id: r.timing for r in rates if r.timing is not None}
    zones = {str(getattr(t.zone, "key", t.zone)) for t in timings.values()}
    if meta is None:
        meta = PlanMeta(timezone=next(iter(zones)) if len(zones) == 1 else "UTC")
    if zones - {meta.timezone}:
        raise ValueError(
            f"timings in zones {sorted(map(str, zones))}, the plan's is {meta.timezone}"
        )
    known = meta.timing_by_id()
    extra = [t for t in timings.values() if t.id not in known]
    if not extra:
        return meta
    return PlanMeta(
        meta.plan_id, meta.timezone, meta.parent_id, (*meta.timings, *extra),
        meta.callee_rules, meta.caller_rules,
    )  # fmt: skip


class RateIndex:
    __slots__ = ("_buckets", "_columns", "_groups", "_instants", "_last", "_long", "_long_sizes",
                 "_names", "_rows", "_shift", "_starts", "_tariffs", "_timings", "meta", "size",
                 "timed", "version")  # fmt: skip

    def __init__(
        self, rates: Iterable[Rate] = (), version: int = 0, meta: PlanMeta | None = None
    ) -> None:
        given = list(rates)
        rows = sorted((_row_of(r) for r in given), key=_preference)
        self._use(_typed_columns(rows, version, _meta_with(meta, given)))

    @classmethod
    def from_rows(
        cls, rows: Iterable[RateRow], version: int = 0, meta: PlanMeta | None = None
    ) -> RateIndex:
        """Build straight from database rows, without making a ``Rate`` per row.

        Within a prefix the rows must come in preference order (priority descending,
        then effective_start descending, then id), as ``ORDER BY prefix, priority DESC,
        effective_start DESC, id`` gives them.
        """
        index = cls.__new__(cls)
        index._use(_typed_columns(rows, version, meta or PlanMeta()))
        return index

    @classmethod
    def from_text(
        cls, blocks: Iterable[bytes], version: int = 0, meta: PlanMeta | None = None
    ) -> RateIndex:
        """Build from blocks of whole lines ``id<TAB>prefix<TAB>tariff<TAB>name`` in
        PostgreSQL's COPY text format (the tariff as ``_tariff_of_text`` reads it), rows
        ordered by prefix in byte order (``COLLATE "C"``) and then by preference. The
        fast path for big plans: no Python loop per row, a tariff's text is turned into
        ``Decimal``/``datetime`` once per distinct tariff and only when a lookup needs it.
        """
        builder = Builder()
        for block in blocks:
            builder.add_text(block)
        columns = builder.finish(
            version,
            bytes,  # type: ignore[arg-type]
            copy_unescape,  # type: ignore[arg-type]
            (meta or PlanMeta()).as_json(),
        )
        bytes(columns.name_text).decode()  # names must be UTF-8: fail here, not in a lookup
        index = cls.__new__(cls)
        index._use(columns)
        return index

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RateIndex:
        """The index saved at ``path``, memory-mapped (milliseconds, pages shared)."""
        index = cls.__new__(cls)
        index._use(lpm_file.load(path))
        return index

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` (fsynced; rename it into place to publish it)."""
        lpm_file.save(self._columns, path)

    def _use(self, columns: Columns) -> None:
        self._columns = columns
        self._starts, self._groups, self._buckets = columns.starts, columns.groups, columns.buckets
        self._rows, self._shift = columns.rows, columns.shift
        self._long = columns.long
        self._long_sizes = sorted({len(p) for p in columns.long}, reverse=True)
        # filled the first time a lookup needs an entry (threads may race: same value)
        self._tariffs: list[_RateTail | None] = [None] * (len(columns.tariff_ends) - 1)
        self._names: list[str | None] = [None] * (len(columns.name_ends) - 1)
        self._instants = columns.instants
        # the latest effective instant: past it, only timings can change a rate
        self._last = _EPOCH + columns.instants[-1] * _MICROSECOND if columns.instants else None
        self.meta = PlanMeta.from_json(columns.meta)
        self._timings = self.meta.timing_by_id()
        self.timed = columns.timed
        self.__class__ = _TimedRateIndex if columns.timed else RateIndex
        self.size = len(columns.rows) // 2
        self.version = columns.version

    def lookup(self, number: str, at: datetime) -> Rate | None:
        """The rate for ``number`` at instant ``at``, or None when no rate applies."""
        # already digits (what authorization passes) skips the per-character rebuild
        digits = number if number.isascii() and number.isdigit() else normalize_number(number)
        size = len(digits)
        if not size:
            return None
        # every line here is measured (cachegrind: ~17k instructions a lookup on 1M rates)
        groups = self._groups
        group = self._long_group(digits) if size > KEY_DIGITS and self._long else -1
        if group >= 0:
            meta = groups[group + group]
        else:
            head = digits[:KEY_DIGITS] if size >= KEY_DIGITS else digits.ljust(KEY_DIGITS, "0")
            key = int(head, 16)
            buckets, starts = self._buckets, self._starts
            bucket = key >> self._shift
            group = bisect_right(starts, key, buckets[bucket], buckets[bucket + 1]) - 1
            # the last prefix at or before the number in order; up to the longest one
            # covering it that is not longer than the number
            while group >= 0:
                meta = groups[group + group]  # (parent + 1) << 8 | length
                length = meta & 255
                if key < starts[group] + SPAN[length] and length <= size:
                    break
                group = (meta >> 8) - 1
        rows, tariffs = self._rows, self._tariffs
        while group >= 0:
            pos, end = groups[group + group + 1], groups[group + group + 3]
            while pos < end:
                ref = rows[pos + 1]  # tariff << 32 | name
                t = tariffs[ref >> 32] or self._tariff(ref >> 32)
                # t[4], t[5]: effective_start, effective_end (no row names a timing here:
                # an index with timings is a _TimedRateIndex, whose lookup checks them)
                if t[4] <= at and (t[5] is None or at < t[5]):
                    name = self._names[ref & 0xFFFFFFFF]
                    if name is None:
                        name = self._name(ref & 0xFFFFFFFF)
                    # concatenation: measured faster than unpacking
                    row = (rows[pos], digits[: meta & 255], name) + t  # noqa: RUF005
                    return _new_rate(Rate, row)
                pos += 2
            group = (meta >> 8) - 1
            if group >= 0:
                meta = groups[group + group]
        return None

    def candidates(self, number: str) -> list[Rate]:
        """Every rate of the plan whose prefix starts ``number`` (digits), in the order a
        lookup tries them: longest prefix first, each prefix's rows in preference order.
        The first of them that applies at an instant is ``lookup``'s answer."""
        return [self._rate_at_row(pos, prefix) for pos, prefix in self._rows_of(number)]

    def _rows_of(self, number: str) -> Iterator[tuple[int, str]]:
        """(row position, prefix) of the rows a lookup of ``number`` walks, in order."""
        size = len(number)
        if not size or not (number.isascii() and number.isdigit()):
            return
        groups, starts = self._groups, self._starts
        group = self._long_group(number) if size > KEY_DIGITS and self._long else -1
        if group < 0:
            head = number[:KEY_DIGITS] if size >= KEY_DIGITS else number.ljust(KEY_DIGITS, "0")
            key = int(head, 16)
            bucket = key >> self._shift
            lo, hi = self._buckets[bucket], self._buckets[bucket + 1]
            group = bisect_right(starts, key, lo, hi) - 1
            while group >= 0:
                meta = groups[group + group]
                length = meta & 255
                if key < starts[group] + SPAN[length] and length <= size:
                    break
                group = (meta >> 8) - 1
        while group >= 0:
            meta = groups[group + group]
            for pos in range(groups[group + group + 1], groups[group + group + 3], 2):
                yield pos, number[: meta & 255]
            group = (meta >> 8) - 1

    def _rate_at_row(self, pos: int, prefix: str) -> Rate:
        ref = self._rows[pos + 1]
        t = self._tariffs[ref >> 32] or self._tariff(ref >> 32)
        name = self._names[ref & 0xFFFFFFFF]
        if name is None:
            name = self._name(ref & 0xFFFFFFFF)
        return _new_rate(Rate, (self._rows[pos], prefix, name, *t))

    def settled(self, start: datetime) -> bool:
        """No rate of the plan can start or stop applying after ``start``: it names no
        timing and every effective_start/effective_end is at or before ``start``."""
        return not self.timed and (self._last is None or start >= self._last)

    def steady(self, start: datetime, end: datetime) -> bool:
        """No rate of the plan can start or stop applying in ``(start, end)``: it names
        no timing and no effective_start/effective_end falls inside."""
        if self.timed:
            return False
        if self._last is None or start >= self._last:
            return True
        instants = self._instants
        i = bisect_right(instants, microseconds(start))
        return i == len(instants) or instants[i] >= microseconds(end)

    def _long_group(self, digits: str) -> int:
        for size in self._long_sizes:
            if size <= len(digits) and (group := self._long.get(digits[:size])) is not None:
                return group
        return -1

    def _tariff(self, n: int) -> _RateTail:
        ends = self._columns.tariff_ends
        tariff = _tariff_of_text(str(self._columns.tariff_text[ends[n] : ends[n + 1]], "ascii"))
        timing = None if tariff.timing is None else self._timings[tariff.timing]
        tail: _RateTail = (*tariff[:7], True, timing, tariff.minimum_charge, tariff.free_seconds)
        self._tariffs[n] = tail
        return tail

    def _name(self, n: int) -> str:
        ends = self._columns.name_ends
        name = self._names[n] = str(self._columns.name_text[ends[n] : ends[n + 1]], "utf-8")
        return name

    def __len__(self) -> int:
        return self.size


class _TimedRateIndex(RateIndex):
    """An index some of whose rows name a timing: its lookup also skips rows whose timing
    does not hold the instant. A ``RateIndex`` becomes one when its columns say so, so an
    index without timings keeps the lean lookup above."""

    __slots__ = ()

    def lookup(self, number: str, at: datetime) -> Rate | None:
        digits = number if number.isascii() and number.isdigit() else normalize_number(number)
        rows, tariffs = self._rows, self._tariffs
        for pos, prefix in self._rows_of(digits):
            ref = rows[pos + 1]
            t = tariffs[ref >> 32] or self._tariff(ref >> 32)
            # t[4], t[5], t[8]: effective_start, effective_end, timing
            if t[4] <= at and (t[5] is None or at < t[5]) and (t[8] is None or t[8].contains(at)):
                return self._rate_at_row(pos, prefix)
        return None
