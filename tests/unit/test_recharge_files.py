"""Bulk recharge files: CSV and XLSX parsing and validation (pure, no database)."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal

import pytest
from openpyxl import Workbook

from sidecar.imports.recharges import (
    RechargeFileError,
    RechargeLimits,
    parse_recharge_file,
)

LIMITS = RechargeLimits()


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def errors_of(data: bytes, limits: RechargeLimits = LIMITS) -> list[tuple[int, str, str]]:
    return [(e.line, e.column, e.message) for e in parse_recharge_file(data, limits).errors]


def test_csv_rows_with_lines_notes_and_ignored_columns() -> None:
    data = (
        "\ufeffAccount, Amount ,Note,Customer\r\n"
        "100001,5.00,march top-up,ACME\r\n"
        "\r\n"
        '100002,"12.3456",,Bob\r\n'
    ).encode()
    parsed = parse_recharge_file(data, LIMITS)
    assert parsed.format == "csv" and parsed.key_column == "account"
    assert parsed.ignored_columns == ["Customer"]
    assert [(r.line, r.key, r.amount, r.note) for r in parsed.rows] == [
        (2, "100001", Decimal("5.00"), "march top-up"),
        (4, "100002", Decimal("12.3456"), ""),
    ]
    assert parsed.errors == []


def test_csv_bad_rows_are_all_reported_by_line() -> None:
    data = (
        b"extension,amount,note\n"
        b"100001,5\n"  # 2: fine
        b"100002,0\n"  # 3: not positive
        b"100003,-4\n"  # 4: negative
        b"100004,1.23456\n"  # 5: too many decimals
        b"100005,1e3\n"  # 6: exponent
        b'=HYPERLINK("x"),1\n'  # 7: formula
        b"100006,=1+2\n"  # 8: formula amount
        b"100007,3,@SUM(A1)\n"  # 9: formula note
        b"100001,2\n"  # 10: duplicate of line 2
        b",2\n"  # 11: empty key
        b"100008,100000.01\n"  # 12: above the maximum
        b'100009,"1,000"\n'  # 13: thousands separator
    )
    parsed = parse_recharge_file(data, LIMITS)
    assert parsed.key_column == "extension"
    assert [r.line for r in parsed.rows] == [2]
    found = [(line, column) for line, column, _ in errors_of(data)]
    assert found == [
        (3, "amount"),
        (4, "amount"),
        (5, "amount"),
        (6, "amount"),
        (7, "extension"),
        (8, "amount"),
        (9, "note"),
        (10, "extension"),
        (11, "extension"),
        (12, "amount"),
        (13, "amount"),
    ]
    messages = dict(((line, column), message) for line, column, message in errors_of(data))
    assert "positive" in messages[(4, "amount")]
    assert "line 2" in messages[(10, "extension")]
    assert "formula" in messages[(7, "extension")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"number,value\n1,2\n", "first row must name"),
        (b"account,extension,amount\n1,2,3\n", "not both"),
        (b"account,amount,amount\n1,2,3\n", "twice"),
        (b"account,amount\n", "no recharge rows"),
        (b"\xff\xfeaccount,amount\n", "UTF-8"),
        (b"account,amount\n1,\x002\n", "NUL"),
    ],
)
def test_unusable_csv_files(data: bytes, message: str) -> None:
    with pytest.raises(RechargeFileError, match=message):
        parse_recharge_file(data, LIMITS)


def test_size_and_row_limits() -> None:
    rows = "account,amount\n" + "".join(f"{100000 + i},1\n" for i in range(11))
    limits = RechargeLimits(max_rows=10)
    with pytest.raises(RechargeFileError, match="more than 10 rows"):
        parse_recharge_file(rows.encode(), limits)
    assert len(parse_recharge_file(rows.encode(), RechargeLimits(max_rows=11)).rows) == 11
    with pytest.raises(RechargeFileError, match="larger than 20 bytes"):
        parse_recharge_file(rows.encode(), RechargeLimits(max_bytes=20))


def test_xlsx_numbers_text_and_formulas() -> None:
    data = xlsx(
        [
            ["Extension", "Amount", "Note"],
            [100001, 12.5, "promo"],
            ["0044123", "7.25", None],
            [100003, 0.1, None],
            [None, None, None],
            [100004, "=2*5", None],
            [100005, 1.00005, None],
            [100006.5, 1, None],
            [100007, 3, "=cmd|' /C calc'!A0"],
        ]
    )
    parsed = parse_recharge_file(data, LIMITS)
    assert parsed.format == "xlsx"
    assert [(r.line, r.key, r.amount, r.note) for r in parsed.rows] == [
        (2, "100001", Decimal("12.5"), "promo"),
        (3, "0044123", Decimal("7.25"), ""),
        (4, "100003", Decimal("0.1"), ""),
    ]
    assert [(e.line, e.column) for e in parsed.errors] == [
        (6, "amount"),
        (7, "amount"),
        (8, "extension"),
        (9, "note"),
    ]
    assert "formula" in parsed.errors[0].message


def test_xlsx_guards_against_bombs_dtds_and_junk() -> None:
    with pytest.raises(RechargeFileError, match="unpacks to more than"):
        parse_recharge_file(
            xlsx([["account", "amount"], ["1", "2"]]), RechargeLimits(max_unpacked_bytes=1000)
        )
    original = xlsx([["account", "amount"], ["1", "2"]])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>' + content
            dst.writestr(item, content)
    with pytest.raises(RechargeFileError, match="DTD"):
        parse_recharge_file(out.getvalue(), LIMITS)
    with pytest.raises(RechargeFileError, match="not a readable XLSX"):
        parse_recharge_file(b"PK\x03\x04" + b"\x00" * 200, LIMITS)


def test_limits_from_environment() -> None:
    limits = RechargeLimits.from_env(
        {"APOLO_BULK_MAX_ROWS": "7", "APOLO_BULK_MAX_AMOUNT": "250.50", "APOLO_BULK_MAX_BYTES": ""}
    )
    assert limits.max_rows == 7 and limits.max_amount == Decimal("250.50")
    assert limits.max_bytes == RechargeLimits().max_bytes
