"""The columns of a ``RateIndex`` and how they are built.

A plan's distinct prefixes are its groups, numbered in lexicographic order; the rows of
a group are consecutive, in preference order. Each group has a *key*: its first 15
digits, padded with zeros, read as hexadecimal. Keys are ordered as the prefixes are
(zero-padding only makes ties, and a tie is always a prefix and its zero extensions, in
that order), and a prefix of ``n <= 15`` digits covers the keys ``key .. key + SPAN[n]
- 1``: those of the numbers that start with it, and of the numbers shorter than it
that it extends with zeros only, which a lookup tells apart by length.

Finding the longest prefix of a number is then one ``bisect`` over the sorted keys
(narrowed by a bucket table) and a short walk up the parents (each group's longest
proper prefix in the plan); all of it in flat integer columns that a file can hold and
every worker can map. Hexadecimal because parsing a power-of-two base and bucketing by
a shift are the cheapest int operations Python has; what one lookup reads sits together
(a group's parent, length and first row; a row's id, tariff and name), because cache
misses cost as much as bytecodes on a big plan.

Prefixes longer than 15 digits (allowed; E.164 numbers have at most 15) have no span:
they are found through ``long``, a small dict, and are otherwise ordinary groups.

Everything is built column by column with ``map``/``dict``/``Counter`` rather than a
Python loop per row: a million-rate plan is built in about a second.

(A marisa trie held the prefixes before: its Python binding alone, listing a 15-digit
number's prefixes, took longer than this whole lookup, and it was built in every worker.)
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat
from operator import add, le, lshift, lt, or_
from typing import Any, TypeVar

KEY_DIGITS = 15  # 15 hexadecimal digits: a key fits a signed 64-bit integer
MAX_PREFIX = 255  # lengths are stored in one byte (the rates table allows 32 digits)
SPAN = tuple(16 ** (KEY_DIGITS - n) if n <= KEY_DIGITS else 0 for n in range(MAX_PREFIX + 1))


@dataclass(frozen=True, slots=True)
class Columns:
    """Everything a ``RateIndex`` answers from. In memory the sequences are ``array``s;
    from a file they are ``memoryview``s of one shared mapping."""

    version: int
    starts: Sequence[int]  # per group, its key (int64), ascending
    # per group two int64: (parent + 1) << 8 | prefix length, and where its rows start in
    # ``rows``; then (0, len(rows)): group g's rows are at groups[2g + 1] .. groups[2g + 3]
    groups: Sequence[int]
    # per bucket b and one more, the first group whose key >> shift is >= b (int32)
    buckets: Sequence[int]
    shift: int
    rows: Sequence[int]  # per row two int64: the rate id, and tariff << 32 | name
    tariff_ends: Sequence[int]  # tariffs + 1 offsets into tariff_text (int64)
    tariff_text: bytes | memoryview  # tariffs, each as ``tariff_text`` of lpm.py writes it
    name_ends: Sequence[int]  # names + 1 offsets into name_text (int64)
    name_text: bytes | memoryview  # names, UTF-8, back to back
    # every distinct effective_start / effective_end of the rows, microseconds since the
    # epoch, ascending: a call crossing none of them (and no timing) keeps its rate
    instants: Sequence[int]
    long: dict[str, int]  # prefixes longer than KEY_DIGITS and their groups
    timed: bool  # some row names a timing
    meta: dict[str, Any]  # the plan's PlanMeta as JSON (time zone, parent, timings, rules)


K = TypeVar("K", bound=Hashable)


def _numbered(table: dict[K, int], keys: Sequence[K]) -> Iterable[int]:
    """Each key's number in ``table``, numbering new keys in order of appearance."""
    for key in dict.fromkeys(keys):  # the distinct keys only: few per block
        if key not in table:
            table[key] = len(table)
    return map(table.__getitem__, keys)


class Builder:
    """Collects rows column-wise (grouped by prefix, groups in ascending byte order, rows
    of a group in preference order) and turns them into ``Columns``."""

    def __init__(self) -> None:
        self.prefixes: list[bytes] = []
        self.rows = array("q")
        self.tariffs: dict[Hashable, int] = {}
        self.names: dict[Hashable, int] = {}

    def add(
        self,
        ids: Iterable[int],
        prefixes: Sequence[bytes],
        tariffs: Sequence[Hashable],
        names: Sequence[Hashable],
    ) -> None:
        count = len(prefixes)
        if not count == len(tariffs) == len(names):
            raise ValueError("columns of different lengths")
        tariff_of = map(lshift, _numbered(self.tariffs, tariffs), repeat(32))
        self.rows.extend(_pairs(ids, map(or_, tariff_of, _numbered(self.names, names)), count))
        self.prefixes.extend(prefixes)
        if len(self.tariffs) >= 2**31 or len(self.names) >= 2**32:
            raise ValueError("too many distinct tariffs or names")

    def add_text(self, block: bytes, piece: int = 1 << 24) -> None:
        """Whole lines of ``id<TAB>prefix<TAB>tariff<TAB>name``, the name with the
        backslash escapes of PostgreSQL's COPY text format. Split 16 MB at a time:
        four objects a row of a whole plan at once would be most of the build's peak."""
        start = 0
        while start < len(block):
            end = block.find(b"\n", start + piece) + 1 or len(block)
            fields = block[start:end].replace(b"\n", b"\t").split(b"\t")
            if fields.pop() != b"" or len(fields) % 4:
                raise ValueError("not whole lines of 4 tab-separated fields")
            self.add(map(int, fields[0::4]), fields[1::4], fields[2::4], fields[3::4])
            start = end

    def finish(
        self,
        version: int,
        tariff_text: Callable[[Hashable], bytes],
        name_text: Callable[[Hashable], bytes],
        plan: dict[str, Any] | None = None,
    ) -> Columns:
        prefixes = groups = self.prefixes
        first_rows: Iterable[int] = range(0, 2 * len(groups) + 1, 2)
        if not all(map(lt, prefixes, islice(prefixes, 1, None))):  # not a row per prefix
            if not all(map(le, prefixes, islice(prefixes, 1, None))):
                raise ValueError("rows are not grouped by prefix in ascending order")
            counts = Counter(prefixes)  # in order of first appearance: ascending
            groups = list(counts)
            first_rows = map(lshift, accumulate(counts.values(), initial=0), repeat(1))
        del self.prefixes, prefixes
        if groups and not (all(groups) and b"".join(groups).isdigit()):
            raise ValueError("a prefix must be one or more ASCII digits")
        try:
            lengths = array("B", map(len, groups))
        except OverflowError:
            raise ValueError(f"a prefix is longer than {MAX_PREFIX} digits") from None
        starts, meta, long = _tree(groups, lengths)
        digits = bucket_digits(len(groups))
        tariffs = [tariff_text(t) for t in self.tariffs]
        names = [name_text(n) for n in self.names]
        # a tariff's text: "rate fee first step start end priority timing minimum free"
        fields = [t.split(b" ") for t in tariffs]
        if any(len(f) != 10 for f in fields):
            raise ValueError("a tariff is not 10 space-separated fields")
        instants = sorted({int(f) for t in fields for f in t[4:6] if f})
        timed = any(t[7] for t in fields)
        return Columns(
            version=version,
            starts=array("q", starts),
            groups=_pairs(meta, first_rows, len(groups) + 1),
            buckets=_buckets(starts, digits),
            shift=4 * (KEY_DIGITS - digits),
            rows=self.rows,
            tariff_ends=array("q", accumulate(map(len, tariffs), initial=0)),
            tariff_text=b"".join(tariffs),
            name_ends=array("q", accumulate(map(len, names), initial=0)),
            name_text=b"".join(names),
            instants=array("q", instants),
            long=long,
            timed=timed,
            meta=dict(plan or {}),
        )


def _pairs(first: Iterable[int], second: Iterable[int], count: int) -> array[int]:
    """Two columns of ``count`` values interleaved in one int64 array (``first`` may be
    one short: its last value is then 0)."""
    out = array("q", bytes(16 * count))
    left, right = array("q", first), array("q", second)
    left.extend(repeat(0, count - len(left)))
    out[0::2], out[1::2] = left, right
    return out


def _tree(groups: list[bytes], lengths: array[int]) -> tuple[list[int], list[int], dict[str, int]]:
    """Keys, ``(parent + 1) << 8 | length`` and the long prefixes of ascending distinct
    prefixes."""
    longest = max(lengths, default=0)
    heads = groups if longest <= KEY_DIGITS else [g[:KEY_DIGITS] for g in groups]
    starts = list(map(int, map(bytes.ljust, heads, repeat(KEY_DIGITS), repeat(b"0")), repeat(16)))
    ends = list(map(add, starts, map(SPAN.__getitem__, lengths)))
    # in ascending order a group's parent is the one before it or one of that one's
    # ancestors: the first of them whose key span still covers this group's key (a long
    # group covers none: its parent here is its longest prefix of <= 15 digits)
    parents: list[int] = []
    append = parents.append
    for group, start in enumerate(starts):
        parent = group - 1
        while parent >= 0 and start >= ends[parent]:
            parent = parents[parent]
        append(parent)
    long: dict[str, int] = {}
    if longest > KEY_DIGITS:
        long = {g.decode(): n for n, g in enumerate(groups) if len(g) > KEY_DIGITS}
        for prefix, group in long.items():
            for size in range(len(prefix) - 1, KEY_DIGITS, -1):
                if (found := long.get(prefix[:size])) is not None:
                    parents[group] = found
                    break
    meta = list(map(add, map(lshift, map(add, parents, repeat(1)), repeat(8)), lengths))
    return starts, meta, long


def bucket_digits(groups: int) -> int:
    """Buckets by the first 0-5 digits of a key, about 8-80 groups in each."""
    digits = 0
    while digits < 5 and 10 ** (digits + 1) * 8 <= groups:
        digits += 1
    return digits


def _buckets(starts: list[int], digits: int) -> array[int]:
    """Per bucket ``b`` (a key's bucket is ``key >> 4 * (15 - digits)``), the first group
    whose key's bucket is ``>= b``, and one more entry. Keys hold decimal digits only, so
    of the ``16**digits`` buckets only the decimal ones can be asked for: they are found
    by bisection, the others copy the next one."""
    shift = 4 * (KEY_DIGITS - digits)
    decimal = map(int, map(str.zfill, map(str, range(10**digits)), repeat(digits)), repeat(16))
    table = array("i")
    filled = 0
    for bucket in decimal:
        table.extend(repeat(bisect_left(starts, bucket << shift), bucket + 1 - filled))
        filled = bucket + 1
    table.extend(repeat(len(starts), (1 << 4 * digits) + 1 - filled))
    return table


_COPY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_COPY_CHARS = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


def copy_unescape(raw: bytes) -> bytes:
    """A field of COPY text format as it was stored (COPY TO escapes only these)."""
    if b"\\" not in raw:
        return raw
    return _COPY_ESCAPE.sub(lambda m: _COPY_CHARS.get(m.group(1), m.group(1)), raw)
