"""Rate CSV parsing/validation and export formatting (pure, no database)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.imports.rates_csv import (
    FIELDS,
    ErrorLog,
    RateRow,
    RowError,
    duplicate_error,
    export_cell,
    format_money,
    format_rate_csv,
    format_timestamp,
    iter_rate_rows,
)

NOW = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def parse(text: str, now: datetime = NOW) -> list[RateRow | RowError]:
    return list(iter_rate_rows(io.StringIO(text, newline=""), now))


def rows_of(text: str) -> list[RateRow]:
    result = parse(text)
    assert all(isinstance(r, RateRow) for r in result), result
    return [r for r in result if isinstance(r, RateRow)]


def errors_of(text: str) -> list[tuple[int, str]]:
    """(line, field) of every error."""
    return [(e.line, e.field) for e in parse(text) if isinstance(e, RowError)]


def one_error(text: str) -> RowError:
    errors = [e for e in parse(text) if isinstance(e, RowError)]
    assert len(errors) == 1, errors
    return errors[0]


def cell_error(column: str, value: str, *, extra: str = "") -> RowError:
    """The single error of a row where ``column`` holds ``value``."""
    header = "prefix,rate_per_minute" + (
        "" if column in {"prefix", "rate_per_minute"} else f",{column}"
    )
    cells = {"prefix": "44", "rate_per_minute": "0.1", column: value}
    row = ",".join(_quote(cells[c]) for c in header.split(","))
    return one_error(f"{header}\n{row}\n{extra}")


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# --------------------------------------------------------------------------- defaults


def test_only_required_columns_take_every_default() -> None:
    [row] = rows_of("prefix,rate_per_minute\n44,0.015\n")
    assert row == RateRow(
        prefix="44",
        name="",
        rate_per_minute=Decimal("0.015"),
        connection_fee=Decimal(0),
        initial_increment=60,
        increment=60,
        effective_start=NOW,
        effective_end=None,
        priority=0,
        enabled=True,
    )
    assert row.line == 2


def test_empty_cells_take_defaults_and_initial_increment_follows_increment() -> None:
    header = ",".join(FIELDS)
    [row] = rows_of(f"{header}\n44,,0.5,,,6,,,,,,,\n")
    assert (row.initial_increment, row.increment) == (6, 6)
    assert row.connection_fee == Decimal(0)
    assert row.effective_start == NOW and row.effective_end is None
    assert (row.priority, row.enabled, row.name) == (0, True, "")
    assert (row.timing, row.minimum_charge, row.free_seconds) == (None, Decimal(0), 0)


def test_timing_minimum_charge_and_free_seconds() -> None:
    [row] = rows_of("prefix,rate_per_minute,timing,minimum_charge,free_seconds\n44,1,peak,0.5,6\n")
    assert (row.timing, row.minimum_charge, row.free_seconds) == ("peak", Decimal("0.5"), 6)


def test_one_now_for_the_whole_file() -> None:
    rows = rows_of("prefix,rate_per_minute\n1,1\n2,1\n3,1\n")
    assert {r.effective_start for r in rows} == {NOW}


def test_all_columns_in_any_order() -> None:
    text = (
        "enabled,priority,effective_end,effective_start,increment,initial_increment,"
        "connection_fee,rate_per_minute,name,prefix\n"
        "no,-3,2025-02-01,2025-01-01T00:00:00Z,6,30,0.05,0.0123,UK mobile,+447\n"
    )
    [row] = rows_of(text)
    assert row == RateRow(
        prefix="447",
        name="UK mobile",
        rate_per_minute=Decimal("0.0123"),
        connection_fee=Decimal("0.05"),
        initial_increment=30,
        increment=6,
        effective_start=datetime(2025, 1, 1, tzinfo=UTC),
        effective_end=datetime(2025, 2, 1, tzinfo=UTC),
        priority=-3,
        enabled=False,
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("prefix,rate_per_minute\n1,1\n", now=datetime(2025, 1, 1))


def test_cells_are_stripped_but_names_kept_verbatim() -> None:
    [row] = rows_of('prefix,name,rate_per_minute\n 44 ,"  Spaced  ", 0.5 \n')
    assert (row.prefix, row.name, row.rate_per_minute) == ("44", "  Spaced  ", Decimal("0.5"))


# --------------------------------------------------------------------------- prefix


@pytest.mark.parametrize(("text", "prefix"), [("+44", "44"), ("0044", "0044"), ("1", "1")])
def test_prefix_plus_is_stripped_and_leading_zeros_kept(text: str, prefix: str) -> None:
    [row] = rows_of(f"prefix,rate_per_minute\n{text},1\n")
    assert row.prefix == prefix


def test_prefix_of_32_digits_is_the_longest() -> None:
    [row] = rows_of(f"prefix,rate_per_minute\n{'9' * 32},1\n")
    assert row.prefix == "9" * 32
    assert "33 digits" in cell_error("prefix", "9" * 33).message


@pytest.mark.parametrize("text", ["44a", "++44", "+", "4 4", "44-1", "٤٤", "４４", "-44", "1.0"])
def test_prefix_must_be_ascii_digits(text: str) -> None:
    error = cell_error("prefix", text)
    assert (error.line, error.field) == (2, "prefix")
    assert "digits 0-9 only" in error.message


def test_required_cells_must_not_be_empty() -> None:
    assert errors_of("prefix,rate_per_minute\n,1\n 44 ,  \n") == [
        (2, "prefix"),
        (3, "rate_per_minute"),
    ]
    assert one_error("prefix,rate_per_minute\n,1\n").message == "is required"


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.015", "0.015"),
        ("12", "12"),
        (".5", "0.5"),
        ("5.", "5"),
        ("0.000001", "0.000001"),
        ("0", "0"),
        ("999999999999.999999", "999999999999.999999"),
        ("000000000000001.25", "1.25"),
    ],
)
def test_money_is_an_exact_decimal(text: str, value: str) -> None:
    [row] = rows_of(f"prefix,rate_per_minute,connection_fee\n1,{text},{text}\n")
    assert type(row.rate_per_minute) is Decimal and type(row.connection_fee) is Decimal
    assert row.rate_per_minute == Decimal(value) == row.connection_fee


def test_money_keeps_values_a_float_would_round() -> None:
    [row] = rows_of("prefix,rate_per_minute\n1,0.100001\n")
    assert row.rate_per_minute == Decimal("0.100001")
    assert str(row.rate_per_minute) == "0.100001"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "must not be negative"),
        ("-0.5", "must not be negative"),
        ("1e3", "not a plain decimal"),
        ("1E-3", "not a plain decimal"),
        ("NaN", "not a plain decimal"),
        ("nan", "not a plain decimal"),
        ("Infinity", "not a plain decimal"),
        ("inf", "not a plain decimal"),
        ("+1", "not a plain decimal"),
        ("1,5", "not a plain decimal"),
        ("1_000", "not a plain decimal"),
        ("1.2.3", "not a plain decimal"),
        (".", "not a plain decimal"),
        ("0x10", "not a plain decimal"),
        ("١٫٥", "not a plain decimal"),
        ("$1", "not a plain decimal"),
        ("0.0000001", "more than 6 decimal places"),
        ("1.5000000", "more than 6 decimal places"),
        ("1000000000000", "too large"),
    ],
)
@pytest.mark.parametrize("column", ["rate_per_minute", "connection_fee"])
def test_bad_money(column: str, text: str, reason: str) -> None:
    error = cell_error(column, text)
    assert (error.line, error.field) == (2, column)
    assert reason in error.message


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize("column", ["increment", "initial_increment"])
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "at least 1"),
        ("-6", "not a positive whole number"),
        ("1.5", "not a positive whole number"),
        ("6s", "not a positive whole number"),
        ("2147483648", "out of range"),
    ],
)
def test_bad_increments(column: str, text: str, reason: str) -> None:
    error = cell_error(column, text)
    assert (error.line, error.field) == (2, column)
    assert reason in error.message


def test_initial_increment_can_differ_from_increment() -> None:
    [row] = rows_of("prefix,rate_per_minute,initial_increment,increment\n1,1,30,6\n")
    assert (row.initial_increment, row.increment) == (30, 6)


@pytest.mark.parametrize(("text", "value"), [("-5", -5), ("7", 7), ("-2147483648", -(2**31))])
def test_priority(text: str, value: int) -> None:
    [row] = rows_of(f"prefix,rate_per_minute,priority\n1,1,{text}\n")
    assert row.priority == value


@pytest.mark.parametrize("text", ["1.0", "high", "+1", "2147483648", "--1"])
def test_bad_priority(text: str) -> None:
    assert cell_error("priority", text).field == "priority"


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2025-01-01", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T10:00:00", datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("2025-01-01 10:00", datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("2025-01-01T10:00:00Z", datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("2025-01-01T10:00:00+02:00", datetime(2025, 1, 1, 8, tzinfo=UTC)),
        ("2025-01-01T10:00:00.25-05:30", datetime(2025, 1, 1, 15, 30, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_iso_8601_and_naive_means_utc(text: str, value: datetime) -> None:
    [row] = rows_of(f"prefix,rate_per_minute,effective_start\n1,1,{text}\n")
    assert row.effective_start == value
    assert row.effective_start.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "01/02/2025", "2025-01-01T25:00", "0"])
@pytest.mark.parametrize("column", ["effective_start", "effective_end"])
def test_bad_timestamps(column: str, text: str) -> None:
    error = cell_error(column, text)
    assert (error.line, error.field) == (2, column)
    assert "ISO 8601" in error.message


@pytest.mark.parametrize("end", ["2025-01-01", "2024-12-31T23:00:00Z", "2025-01-01T02:00:00+02:00"])
def test_effective_end_must_be_after_start(end: str) -> None:
    error = one_error(
        f"prefix,rate_per_minute,effective_start,effective_end\n1,1,2025-01-01,{end}\n"
    )
    assert (error.line, error.field) == (2, "effective_end")
    assert "later than effective_start" in error.message


def test_effective_end_is_compared_with_the_default_start() -> None:
    error = one_error("prefix,rate_per_minute,effective_end\n1,1,2025-03-01\n")
    assert error.field == "effective_end"
    [row] = rows_of("prefix,rate_per_minute,effective_end\n1,1,2025-03-02\n")
    assert row.effective_end == datetime(2025, 3, 2, tzinfo=UTC)


def test_a_bad_start_is_not_also_reported_as_a_bad_end() -> None:
    text = "prefix,rate_per_minute,effective_start,effective_end\n1,1,soon,2000-01-01\n"
    assert errors_of(text) == [(2, "effective_start")]


# --------------------------------------------------------------------------- enabled


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("false", False),
     ("0", False), ("no", False), ("NO", False)],
)  # fmt: skip
def test_enabled(text: str, value: bool) -> None:
    [row] = rows_of(f"prefix,rate_per_minute,enabled\n1,1,{text}\n")
    assert row.enabled is value


@pytest.mark.parametrize("text", ["y", "n", "on", "2", "t"])
def test_bad_enabled(text: str) -> None:
    assert "true/false/1/0/yes/no" in cell_error("enabled", text).message


# --------------------------------------------------------------------------- name


def test_name_may_not_hold_nul() -> None:
    assert cell_error("name", "a\x00b").message == "contains a NUL character"


def test_name_with_undecodable_bytes_names_the_line() -> None:
    data = b"prefix,name,rate_per_minute\n1,ok,1\n2,caf\xe9,1\n"
    text = io.TextIOWrapper(
        io.BytesIO(data), encoding="utf-8", errors="surrogateescape", newline=""
    )
    errors = [e for e in iter_rate_rows(text, NOW) if isinstance(e, RowError)]
    assert [(e.line, e.field, e.message) for e in errors] == [
        (3, "name", "is not valid UTF-8 text")
    ]


def test_unicode_names_are_fine() -> None:
    [row] = rows_of("prefix,name,rate_per_minute\n81,日本 Ñandú ☎,1\n")
    assert row.name == "日本 Ñandú ☎"


# --------------------------------------------------------------------------- header


def test_header_names_may_have_spaces_and_a_bom() -> None:
    [row] = rows_of("\ufeffprefix, name , rate_per_minute\n1,x,2\n")
    assert (row.prefix, row.name, row.rate_per_minute) == ("1", "x", Decimal(2))


def test_unknown_header_stops_everything() -> None:
    result = parse("prefix,rate_per_minute,Rate,colour\n1,1,1,red\n")
    assert [(e.line, e.field) for e in result if isinstance(e, RowError)] == [
        (1, "header"),
        (1, "header"),
    ]
    assert not any(isinstance(r, RateRow) for r in result)
    assert "unknown column 'Rate'" in str(result[0])


def test_duplicate_header() -> None:
    error = one_error("prefix,rate_per_minute,prefix\n1,1,2\n")
    assert str(error) == "line 1: header: column 'prefix' appears more than once"


@pytest.mark.parametrize("header", ["prefix,name", "name,rate_per_minute", "name"])
def test_missing_required_column(header: str) -> None:
    errors = [e for e in parse(f"{header}\n") if isinstance(e, RowError)]
    assert errors and all((e.line, e.field) == (1, "header") for e in errors)
    assert all("is missing" in e.message for e in errors)


@pytest.mark.parametrize("text", ["", "\n", "\nprefix,rate_per_minute\n1,1\n"])
def test_the_first_line_must_be_the_header(text: str) -> None:
    error = one_error(text)
    assert (error.line, error.field) == (1, "header")


def test_header_only_is_an_empty_import() -> None:
    assert parse("prefix,rate_per_minute\n") == []


# --------------------------------------------------------------------------- line numbers


def test_errors_carry_physical_line_numbers() -> None:
    text = (
        "prefix,name,rate_per_minute\n"  # 1
        "1,ok,1\n"  # 2
        "\n"  # 3 (blank, skipped)
        'x,"two\nlines",1\n'  # 4-5: the record starts on line 4
        "2,fine,abc\n"  # 6
        "\r\n"  # 7 (blank)
        "3,bad,-1,extra\n"  # 8
        "+,also bad,\n"  # 9
    )
    assert errors_of(text) == [
        (4, "prefix"),
        (6, "rate_per_minute"),
        (8, "row"),
        (9, "prefix"),
        (9, "rate_per_minute"),
    ]


def test_every_bad_cell_of_a_row_is_reported() -> None:
    header = ",".join(FIELDS)
    text = f"{header}\nA,n,-1,x,0,0,never,never,p,maybe,peak hours,-0.5,1.5\n"
    assert [f for _, f in errors_of(text)] == [
        "prefix",
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
    ]


def test_row_with_too_few_or_too_many_fields() -> None:
    text = "prefix,name,rate_per_minute\n1,x\n2,x,1,1\n"
    result = [e for e in parse(text) if isinstance(e, RowError)]
    assert [(e.line, e.field) for e in result] == [(2, "row"), (3, "row")]
    assert result[0].message == "has 2 fields; the header has 3"


def test_malformed_csv_stops_with_an_error() -> None:
    result = parse('prefix,name,rate_per_minute\n1,ok,1\n2,"bad"quote,1\n3,never,1\n')
    assert isinstance(result[0], RateRow)
    assert len(result) == 2
    error = result[1]
    assert isinstance(error, RowError)
    assert (error.line, error.field) == (3, "row")
    assert error.message.startswith("malformed CSV: ")


def test_unterminated_quote_names_the_line_it_opened_on() -> None:
    result = parse('prefix,name,rate_per_minute\n1,ok,1\n2,"open,1\n3,x,1\n4,y,1\n')
    assert isinstance(result[0], RateRow)
    error = result[1]
    assert isinstance(error, RowError) and len(result) == 2
    assert (error.line, error.field) == (3, "row")
    assert "reading stopped at line 5" in error.message


def test_malformed_header() -> None:
    error = one_error('"prefix,rate_per_minute\n1,1\n')
    assert (error.line, error.field) == (1, "header")
    assert "malformed CSV" in error.message


def test_rows_are_streamed_not_collected() -> None:
    def lines() -> object:
        yield "prefix,rate_per_minute\n"
        yield "1,1\n"
        raise AssertionError("read past the first row")

    stream = iter_rate_rows(lines(), NOW)  # type: ignore[arg-type]
    first = next(stream)
    assert isinstance(first, RateRow) and first.prefix == "1"


# --------------------------------------------------------------------------- errors


def test_row_error_text() -> None:
    assert str(RowError(7, "increment", "must be at least 1 second")) == (
        "line 7: increment: must be at least 1 second"
    )
    assert str(duplicate_error(9, 4)) == (
        "line 9: prefix: same prefix, effective_start, priority and timing as line 4"
    )


def test_error_log_lists_the_first_and_counts_all() -> None:
    log = ErrorLog(limit=2)
    assert not log
    for line in range(2, 7):
        log.add(RowError(line, "prefix", "x"))
    assert log and log.count == 5 and log.omitted == 3
    assert [e.line for e in log.shown] == [2, 3]
    log.extend([RowError(99, "prefix", "dup")], total=4)
    assert log.count == 9 and len(log.shown) == 2


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+44 mobile", "'+44 mobile"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTab", "'\tTab"),
        ("\rCR", "'\rCR"),
        ("UK = mobile", "UK = mobile"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_export_cell_escapes_formulas(name: str, cell: str) -> None:
    assert export_cell(name) == cell


@pytest.mark.parametrize(
    ("value", "text"),
    [("0.010000", "0.01"), ("5.000000", "5"), ("0", "0"), ("0E-6", "0"), ("100", "100"),
     ("1E+2", "100"), ("123456789012.123456", "123456789012.123456")],
)  # fmt: skip
def test_format_money_is_plain(value: str, text: str) -> None:
    assert format_money(Decimal(value)) == text


def test_format_timestamp_is_utc_with_z() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2025, 1, 1, 2, tzinfo=plus2)) == "2025-01-01T00:00:00Z"
    assert format_timestamp(NOW) == "2025-03-01T12:30:15.123456Z"


def _row(**changes: object) -> RateRow:
    base: dict[str, object] = {
        "prefix": "44",
        "name": "UK",
        "rate_per_minute": Decimal("0.015000"),
        "connection_fee": Decimal("0"),
        "initial_increment": 60,
        "increment": 6,
        "effective_start": datetime(2025, 1, 1, tzinfo=UTC),
        "effective_end": None,
        "priority": 0,
        "enabled": True,
    }
    base.update(changes)
    return RateRow(**base)  # type: ignore[arg-type]


def test_format_rate_csv() -> None:
    rows = [
        _row(),
        _row(prefix="4420", name='=HYPERLINK("x"), "London"', enabled=False, priority=-1,
             effective_end=datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC), timing="peak",
             minimum_charge=Decimal("0.25"), free_seconds=5),
    ]  # fmt: skip
    assert "".join(format_rate_csv(rows)) == (
        "prefix,name,rate_per_minute,connection_fee,initial_increment,increment,"
        "effective_start,effective_end,priority,enabled,timing,minimum_charge,free_seconds\r\n"
        "44,UK,0.015,0,60,6,2025-01-01T00:00:00Z,,0,true,,0,0\r\n"
        '4420,"\'=HYPERLINK(""x""), ""London""",0.015,0,60,6,2025-01-01T00:00:00Z,'
        "2026-01-01T00:00:00.000005Z,-1,false,peak,0.25,5\r\n"
    )


def test_format_rate_csv_of_nothing_is_the_header() -> None:
    assert list(format_rate_csv([])) == [",".join(FIELDS) + "\r\n"]


def test_escaped_names_come_back_with_the_quote() -> None:
    text = "".join(format_rate_csv([_row(name="=cmd")]))
    [row] = rows_of(text)
    assert row.name == "'=cmd"
    assert row == _row(name="'=cmd")


def _round_trip(rows: list[RateRow]) -> list[RateRow]:
    text = "".join(format_rate_csv(rows))
    return rows_of(text)


def test_round_trip_of_a_mixed_file() -> None:
    rows = [
        _row(),
        _row(prefix="1", name='comma, "quote"\nnewline\rcr', priority=5, enabled=False),
        _row(prefix="0044", connection_fee=Decimal("0.000001"), initial_increment=1,
             effective_end=datetime(2030, 6, 1, 12, 0, 0, 1, tzinfo=UTC)),
        _row(prefix="9" * 32, rate_per_minute=Decimal("999999999999.999999"), name=" spaced "),
    ]  # fmt: skip
    assert _round_trip(rows) == rows


_times = st.datetimes(  # bounds are naive; the values get UTC
    min_value=datetime(1970, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)
_money = st.decimals(
    min_value=0, max_value=Decimal("999999999999.999999"), places=6, allow_nan=False
)
_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40).filter(
    lambda name: not name.startswith(("=", "+", "-", "@", "\t", "\r"))
)


@st.composite
def _rate_rows(draw: st.DrawFn) -> RateRow:
    start = draw(_times)
    end = draw(
        st.none() | st.integers(1, 10**12).map(lambda us: start + timedelta(microseconds=us))
    )
    return RateRow(
        prefix=draw(st.text("0123456789", min_size=1, max_size=32)),
        name=draw(_names),
        rate_per_minute=draw(_money),
        connection_fee=draw(_money),
        initial_increment=draw(st.integers(1, 2**31 - 1)),
        increment=draw(st.integers(1, 2**31 - 1)),
        effective_start=start,
        effective_end=end,
        priority=draw(st.integers(-(2**31), 2**31 - 1)),
        enabled=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(_rate_rows(), max_size=8))
def test_round_trip_property(rows: list[RateRow]) -> None:
    """import(export(x)) == x for every name that does not look like a formula."""
    assert _round_trip(rows) == rows


# --------------------------------------------------------------------------- repeated cells


def test_a_repeated_bad_cell_is_an_error_on_every_line_it_is_on() -> None:
    """Cells are parsed once per distinct text; a text that failed is never remembered."""
    text = "prefix,rate_per_minute,increment\n1,0.1,6\n2,-1,6\n3,0.1,0\n4,-1,0\n5,0.1,6\n"
    assert errors_of(text) == [
        (3, "rate_per_minute"), (4, "increment"), (5, "rate_per_minute"), (5, "increment"),
    ]  # fmt: skip


def test_repeated_cells_give_the_same_values_as_cells_seen_once() -> None:
    body = "".join(
        f"{n},{'0.10' if n % 2 else ' 0.1 '},{60 if n % 3 else 6}\n" for n in range(1, 5000)
    )
    rows = rows_of("prefix,rate_per_minute,increment\n" + body)
    assert len(rows) == 4999
    assert {str(r.rate_per_minute) for r in rows} == {"0.10", "0.1"}
    assert [r.increment for r in rows[:6]] == [60, 60, 6, 60, 60, 6]
    assert rows[-1].prefix == "4999" and rows[-1].line == 5000
