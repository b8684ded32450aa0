"""Rate-plan CSV: streaming parse/validation for import, formatting for export.

Pure functions over text; no SQL and no CLI here (the database side is
``sidecar.repo.rate_import``, the commands are ``sidecar.cli.rates_cmd``).

Format
------
The first line is the header, with names from :data:`FIELDS` in any order; only
``prefix`` and ``rate_per_minute`` are required columns. An empty cell (or a missing
column) takes the default:

==================  ===========================================================
prefix              required; digits only, 1-32 of them; one leading ``+`` is dropped
name                ``""``; kept exactly as written (not stripped)
rate_per_minute     required; plain decimal, >= 0, at most 6 decimals, 12 integer digits
connection_fee      ``0``; same rules as rate_per_minute
increment           ``60``; seconds, a positive integer
initial_increment   the row's ``increment``
effective_start     the import's start instant (one value for the whole file)
effective_end       open (no end); must be later than effective_start
priority            ``0``; an integer, may be negative
enabled             ``true``; one of true/false/1/0/yes/no (any case)
timing              none (the rate applies at any time); else the name of one of
                    the plan's timings (``apolo timings``), checked at import
minimum_charge      ``0``; money, as rate_per_minute: a charged call never costs less
free_seconds        ``0``; whole seconds: calls of at most this long cost nothing
==================  ===========================================================

Timestamps are ISO 8601: a date (midnight UTC), or a date-time with an offset; a
date-time without one is UTC. Money never goes through float: ``NaN``, ``Infinity``,
exponents (``1e3``), signs and thousands separators are refused.

Errors carry the physical line the record starts on (the header is line 1), the
field and a reason. Blank lines are skipped. Rows of a file with any error must not
be imported; :class:`ErrorLog` keeps the first errors and counts the rest.
Duplicate (prefix, effective_start, priority, timing) rows need a look across the whole file;
``sidecar.repo.rate_import`` finds them in its staging table so that memory stays
bounded however long the file is, and reports them as :class:`RowError` too.

Export and formula injection
----------------------------
:func:`format_rate_csv` writes the same header in :data:`FIELDS` order, timestamps as
ISO 8601 UTC (``2024-05-01T00:00:00Z``) and money without trailing zeros. A ``name``
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run
as a formula by spreadsheet programs, so it is written with a leading single quote
(``=HYPERLINK(...)`` becomes ``'=HYPERLINK(...)``). Import does not strip that quote:
exporting and re-importing reproduces the rates exactly except for such names.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

FIELDS: tuple[str, ...] = (
    "prefix",
    "name",
    "rate_per_minute",
    "connection_fee",
    "initial_increment",
    "increment",
    "effective_start",
    "effective_end",
    "priority",
    "enabled",
    "timing",
    "minimum_charge",
    "free_seconds",
)
REQUIRED: frozenset[str] = frozenset({"prefix", "rate_per_minute"})

DEFAULT_INCREMENT = 60
MAX_PREFIX_DIGITS = 32
MONEY_DECIMALS = 6
MONEY_INTEGER_DIGITS = 12  # numeric(18,6)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_ZERO = Decimal(0)
_UNPARSED = object()
_MEMO_CELLS = 4096  # distinct texts kept per column (prefixes, all distinct, fill it once)
_NO_HEADER = "is missing: the first line must name the columns, e.g. prefix,rate_per_minute"


@dataclass(frozen=True, slots=True)
class RateRow:
    """One validated rate, as imported or exported (money as Decimal, times aware UTC).

    ``line`` is where the row came from in its file (0 when it did not come from a
    file); it is not part of equality, so an exported row equals its re-import.
    """

    prefix: str
    name: str
    rate_per_minute: Decimal
    connection_fee: Decimal
    initial_increment: int
    increment: int
    effective_start: datetime
    effective_end: datetime | None
    priority: int
    enabled: bool
    timing: str | None = None  # a timing's name in the plan; None: at any time
    minimum_charge: Decimal = _ZERO
    free_seconds: int = 0
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class RowError:
    """What is wrong at ``line`` (1 = the header) in ``field`` ("header", "row" or a column)."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


class ErrorLog:
    """Keeps the first ``limit`` errors and counts all of them."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.count = 0
        self.shown: list[RowError] = []

    def add(self, error: RowError) -> None:
        self.count += 1
        if len(self.shown) < self.limit:
            self.shown.append(error)

    def extend(self, errors: Iterable[RowError], total: int) -> None:
        """Add ``errors``, the listed part of ``total`` errors found elsewhere."""
        listed = 0
        for error in errors:
            self.add(error)
            listed += 1
        self.count += total - listed

    @property
    def omitted(self) -> int:
        return self.count - len(self.shown)

    def __bool__(self) -> bool:
        return self.count > 0


class _FieldError(ValueError):
    """A cell that does not parse; the message completes "line N: field: ..."."""


# --------------------------------------------------------------------------- cells


def _is_digits(text: str) -> bool:
    """ASCII 0-9 only (``str.isdigit`` alone also accepts e.g. Arabic-Indic digits)."""
    return text.isascii() and text.isdigit()


def parse_prefix(text: str) -> str:
    digits = text[1:] if text.startswith("+") else text
    if not _is_digits(digits):
        raise _FieldError(f"{text!r} must be digits 0-9 only (one leading + is allowed)")
    if len(digits) > MAX_PREFIX_DIGITS:
        raise _FieldError(f"has {len(digits)} digits; at most {MAX_PREFIX_DIGITS} are allowed")
    return digits


def parse_money(text: str) -> Decimal:
    """A non-negative plain decimal (``0.015``, ``12``, ``.5``), never through float."""
    whole, _, decimals = text.partition(".")
    if not _is_digits(whole + decimals):
        if text.startswith("-"):
            raise _FieldError(f"{text!r} must not be negative")
        raise _FieldError(f"{text!r} is not a plain decimal number such as 0.015")
    if len(decimals) > MONEY_DECIMALS:
        raise _FieldError(f"{text!r} has more than {MONEY_DECIMALS} decimal places")
    if len(whole.lstrip("0")) > MONEY_INTEGER_DIGITS:
        raise _FieldError(f"{text!r} is too large (at most {MONEY_INTEGER_DIGITS} integer digits)")
    return Decimal(text)


def parse_increment(text: str) -> int:
    """Seconds: a positive integer."""
    if not _is_digits(text):
        raise _FieldError(f"{text!r} is not a positive whole number of seconds")
    value = int(text)
    if value == 0:
        raise _FieldError("must be at least 1 second")
    if value > INT32_MAX:
        raise _FieldError(f"{value} is out of range (1 to {INT32_MAX})")
    return value


def parse_priority(text: str) -> int:
    if not _is_digits(text.removeprefix("-")):
        raise _FieldError(f"{text!r} is not a whole number")
    value = int(text)
    if not INT32_MIN <= value <= INT32_MAX:
        raise _FieldError(f"{value} is out of range ({INT32_MIN} to {INT32_MAX})")
    return value


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 date or date-time; no offset means UTC. Returned in UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _FieldError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-05-01T00:00:00Z)"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_seconds(text: str) -> int:
    """Whole seconds, 0 or more."""
    if not _is_digits(text):
        raise _FieldError(f"{text!r} is not a whole number of seconds (0 or more)")
    value = int(text)
    if value > INT32_MAX:
        raise _FieldError(f"{value} is out of range (0 to {INT32_MAX})")
    return value


def parse_timing_name(text: str) -> str:
    """A timing's name: 1-64 of A-Z a-z 0-9 _ . - (resolved in the plan at import)."""
    ok = 1 <= len(text) <= 64 and text.isascii()
    if not ok or not all(c.isalnum() or c in "_.-" for c in text):
        raise _FieldError(f"{text!r} is not a timing name (1-64 of A-Z a-z 0-9 _ . -)")
    return text


def parse_enabled(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _FieldError(f"{text!r} must be one of true/false/1/0/yes/no")


def check_name(text: str) -> str:
    if "\x00" in text:
        raise _FieldError("contains a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8
            raise _FieldError("is not valid UTF-8 text") from None
    return text


# --------------------------------------------------------------------------- header


def check_header(cells: list[str]) -> tuple[list[str], list[RowError]]:
    """The column names (stripped, BOM dropped) and what is wrong with them."""
    names = [cell.strip() for cell in cells]
    if names:
        names[0] = names[0].removeprefix("\ufeff").strip()
    errors: list[RowError] = []
    seen: set[str] = set()
    for name in names:
        if name not in FIELDS:
            expected = ", ".join(FIELDS)
            errors.append(RowError(1, "header", f"unknown column {name!r} (known: {expected})"))
        elif name in seen:
            errors.append(RowError(1, "header", f"column {name!r} appears more than once"))
        seen.add(name)
    for name in sorted(REQUIRED - seen):
        errors.append(RowError(1, "header", f"required column {name!r} is missing"))
    return names, errors


# --------------------------------------------------------------------------- rows


_PARSERS: dict[str, Callable[[str], Any]] = {
    "prefix": parse_prefix,
    "name": check_name,
    "rate_per_minute": parse_money,
    "connection_fee": parse_money,
    "initial_increment": parse_increment,
    "increment": parse_increment,
    "effective_start": parse_timestamp,
    "effective_end": parse_timestamp,
    "priority": parse_priority,
    "enabled": parse_enabled,
    "timing": parse_timing_name,
    "minimum_charge": parse_money,
    "free_seconds": parse_seconds,
}


class _RowParser:
    """Turns the cells of one record into a RateRow or the list of its errors."""

    def __init__(self, columns: list[str], now: datetime) -> None:
        self.width = len(columns)
        # (position, column, parser, strip the cell?, its parsed cells); "name" is kept
        # exactly as written
        self.plan: list[tuple[int, str, Callable[[str], Any], bool, dict[str, Any]]] = [
            (i, col, _PARSERS[col], col != "name", {}) for i, col in enumerate(columns)
        ]
        self.now = now

    def parse(self, cells: list[str], line: int) -> RateRow | list[RowError]:
        if len(cells) != self.width:
            message = f"has {len(cells)} fields; the header has {self.width}"
            return [RowError(line, "row", message)]
        values: dict[str, Any] = {}
        errors: list[RowError] = []
        for i, column, parse, strip, memo in self.plan:
            text = cells[i].strip() if strip else cells[i]
            if not text:
                if column in REQUIRED:
                    errors.append(RowError(line, column, "is required"))
                continue
            # a deck repeats most cells (a few hundred prices, one start date): each text
            # is parsed once; the parsers are pure, and a cell that fails is never kept
            value = memo.get(text, _UNPARSED)
            if value is _UNPARSED:
                try:
                    value = parse(text)
                except _FieldError as exc:
                    errors.append(RowError(line, column, str(exc)))
                    continue
                if len(memo) < _MEMO_CELLS:
                    memo[text] = value
            values[column] = value
        return errors or self._row(values, line)

    def _row(self, values: dict[str, Any], line: int) -> RateRow | list[RowError]:
        """The row from its parsed cells, defaults filled in; checks effective_end."""
        increment = values.get("increment", DEFAULT_INCREMENT)
        start = values.get("effective_start", self.now)
        end = values.get("effective_end")
        if end is not None and end <= start:
            return [RowError(line, "effective_end", _end_message(start, end))]
        return RateRow(
            prefix=values["prefix"],
            name=values.get("name", ""),
            rate_per_minute=values["rate_per_minute"],
            connection_fee=values.get("connection_fee", _ZERO),
            initial_increment=values.get("initial_increment", increment),
            increment=increment,
            effective_start=start,
            effective_end=end,
            priority=values.get("priority", 0),
            enabled=values.get("enabled", True),
            timing=values.get("timing"),
            minimum_charge=values.get("minimum_charge", _ZERO),
            free_seconds=values.get("free_seconds", 0),
            line=line,
        )


def duplicate_error(line: int, first_line: int) -> RowError:
    """The error for a row repeating the (prefix, effective_start, priority, timing) of an
    earlier one."""
    return RowError(
        line, "prefix", f"same prefix, effective_start, priority and timing as line {first_line}"
    )


def unknown_timing_error(line: int, name: str, plan: str) -> RowError:
    return RowError(line, "timing", f"rate plan {plan!r} has no timing named {name!r}")


def _end_message(start: datetime, end: datetime) -> str:
    return f"{format_timestamp(end)} must be later than effective_start {format_timestamp(start)}"


def iter_rate_rows(lines: Iterable[str], now: datetime) -> Iterator[RateRow | RowError]:
    """Parse and validate a rate CSV one record at a time.

    ``lines`` is any iterable of text lines, e.g. a file opened with ``newline=""``.
    ``now`` (timezone-aware) is the default effective_start of every row.
    Yields each valid row and every error (a bad row may yield several). Header errors
    end the stream, as does malformed CSV (an unterminated quote, say).
    Duplicate rows are not detected here (see the module docstring).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    records = _records(csv.reader(lines, strict=True))
    try:
        yield from _validate(records, now.astimezone(UTC))
    except _MalformedCsvError as exc:
        yield exc.error


def _validate(
    records: Iterator[tuple[int, list[str]]], now: datetime
) -> Iterator[RateRow | RowError]:
    first = next(records, None)
    if first is None or not first[1]:
        yield RowError(1, "header", _NO_HEADER)
        return
    columns, header_errors = check_header(first[1])
    if header_errors:
        yield from header_errors
        return
    parser = _RowParser(columns, now)
    for line, cells in records:
        result = parser.parse(cells, line)
        if isinstance(result, RateRow):
            yield result
        else:
            yield from result


class _MalformedCsvError(Exception):
    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells) of a csv reader; blank lines after the header
    are skipped. Malformed CSV raises _MalformedCsvError naming the record's first line."""
    start = 1
    try:
        for cells in reader:
            if cells or start == 1:
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        stopped = (
            "" if reader.line_num <= start else f" (reading stopped at line {reader.line_num})"
        )
        where = "header" if start == 1 else "row"
        raise _MalformedCsvError(RowError(start, where, f"malformed CSV{stopped}: {exc}")) from None


# --------------------------------------------------------------------------- export


def export_cell(text: str) -> str:
    """A text cell made safe for spreadsheets: formula-like text gets a leading ``'``."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def format_money(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros (never an exponent)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; microseconds only when there are some."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_cells(row: RateRow) -> list[str]:
    return [
        row.prefix,
        export_cell(row.name),
        format_money(row.rate_per_minute),
        format_money(row.connection_fee),
        str(row.initial_increment),
        str(row.increment),
        format_timestamp(row.effective_start),
        "" if row.effective_end is None else format_timestamp(row.effective_end),
        str(row.priority),
        "true" if row.enabled else "false",
        row.timing or "",
        format_money(row.minimum_charge),
        str(row.free_seconds),
    ]


class _Echo:
    """A file-like whose write() returns what it is given, so csv.writer returns lines."""

    def write(self, text: str) -> str:
        return text


def format_rate_csv(rows: Iterable[RateRow]) -> Iterator[str]:
    """The CSV text record by record, header first, each ending in ``\r\n`` (RFC 4180).

    CRLF also makes the writer quote any cell holding a lone ``\r``, which a ``\n``
    terminator would leave bare (and a reader would take for a line break).
    """
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(FIELDS)
    for row in rows:
        yield writer.writerow(export_cells(row))
