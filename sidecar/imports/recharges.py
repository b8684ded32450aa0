"""Bulk recharge files (CSV or XLSX): parsing and validation, pure (no SQL, no Flask).

Format
------
The first row names the columns, in any order and any case: ``account`` (the account
number) or ``extension`` (an ANI of the account, else its number), ``amount``, and
optionally ``note``. Other columns are ignored and listed in the result. Blank rows are
skipped. Lines are numbered as a spreadsheet shows them: the header is line 1.

- ``amount``: positive, at most 4 decimals, at most ``max_amount``. As text it is a plain
  decimal (``12.5``; no sign, exponent or thousands separator). An XLSX number cell holds
  a binary double: it is read as the shortest decimal that round-trips to that double
  (what Excel displays, ``12.5``), never through float arithmetic, and then must meet the
  same rules.
- ``account``/``extension``: text, or an XLSX whole-number cell (leading zeros are lost
  in number cells: store such extensions as text).
- Formula-looking text (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return)
  is rejected, not evaluated; so are XLSX formula cells.
- The same account twice in a file is an error (a typo in a spreadsheet should not pay
  twice); every row of a file is checked before anything is reported.

XLSX files are opened with openpyxl in read-only mode after checking the archive: at most
``max_unpacked_bytes`` uncompressed (zip bombs) and no DTD in any XML part (entity
expansion).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
KEY_COLUMNS = ("account", "extension")
_PLAIN_AMOUNT = re.compile(r"^[0-9]{1,14}(\.[0-9]{1,4})?$")
_MAX_KEY_LENGTH = 64
_MAX_NOTE_LENGTH = 500
_XLSX_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class RechargeLimits:
    # APOLO_BULK_MAX_BYTES: largest upload accepted (APOLO_MAX_DOCUMENT_BYTES, the app's
    # limit on any request body, applies too: the smaller one wins)
    max_bytes: int = 2_000_000
    # APOLO_BULK_MAX_ROWS: most data rows in one file
    max_rows: int = 10_000
    # APOLO_BULK_MAX_AMOUNT: largest single recharge in a file
    max_amount: Decimal = Decimal("100000")
    # APOLO_BULK_MAX_UNPACKED_BYTES: largest uncompressed size of an XLSX archive
    max_unpacked_bytes: int = 50_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RechargeLimits:
        defaults = cls()
        return cls(
            max_bytes=int(environ.get("APOLO_BULK_MAX_BYTES") or defaults.max_bytes),
            max_rows=int(environ.get("APOLO_BULK_MAX_ROWS") or defaults.max_rows),
            max_amount=Decimal(environ.get("APOLO_BULK_MAX_AMOUNT") or defaults.max_amount),
            max_unpacked_bytes=int(
                environ.get("APOLO_BULK_MAX_UNPACKED_BYTES") or defaults.max_unpacked_bytes
            ),
        )


class RechargeFileError(ValueError):
    """The file as a whole is unusable (size, format, header, row count)."""


@dataclass(frozen=True)
class RechargeRow:
    line: int
    key: str  # the account number or extension as written
    amount: Decimal
    note: str


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


@dataclass
class ParsedFile:
    format: str  # "csv" or "xlsx"
    key_column: str  # "account" or "extension"
    rows: list[RechargeRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def parse_recharge_file(data: bytes, limits: RechargeLimits) -> ParsedFile:
    """Rows and row errors of a CSV or XLSX file (told apart by content, not by name)."""
    if len(data) > limits.max_bytes:
        raise RechargeFileError(f"the file is larger than {limits.max_bytes} bytes")
    if not data.strip():
        raise RechargeFileError("the file is empty")
    if data.startswith(_XLSX_MAGIC):
        return _parse(_xlsx_rows(data, limits), "xlsx", limits)
    return _parse(_csv_rows(data), "csv", limits)


# ------------------------------------------------------------------ readers


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RechargeFileError("a CSV file must be UTF-8 text") from None
    if "\x00" in text:
        raise RechargeFileError("a CSV file must be text (it holds NUL bytes)")
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    try:
        for record in reader:
            yield start, list(record)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise RechargeFileError(f"line {start}: malformed CSV ({exc})") from None


class _Formula:
    """An XLSX formula cell: rejected, never evaluated."""


FORMULA = _Formula()


def _check_archive(data: bytes, limits: RechargeLimits) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise RechargeFileError("not a readable XLSX workbook") from None
    with archive:
        members = archive.infolist()
        if len(members) > 1000:
            raise RechargeFileError("the XLSX archive has too many parts")
        if sum(m.file_size for m in members) > limits.max_unpacked_bytes:
            raise RechargeFileError(
                f"the XLSX workbook unpacks to more than {limits.max_unpacked_bytes} bytes"
            )
        for member in members:
            if member.filename.endswith((".xml", ".rels")) and _has_dtd(archive, member):
                raise RechargeFileError("XLSX parts with a DTD are refused")


def _has_dtd(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    tail = b""
    try:
        with archive.open(member) as part:
            while chunk := part.read(65536):
                window = tail + chunk
                if b"<!DOCTYPE" in window or b"<!ENTITY" in window:
                    return True
                tail = window[-16:]
    except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError):
        raise RechargeFileError("not a readable XLSX workbook") from None
    return False


def _xlsx_rows(data: bytes, limits: RechargeLimits) -> Iterator[tuple[int, list[Any]]]:
    _check_archive(data, limits)
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:
        raise RechargeFileError("not a readable XLSX workbook") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise RechargeFileError("the workbook has no worksheet")
        try:
            for number, cells in enumerate(sheet.iter_rows(), start=1):
                values: list[Any] = []
                for cell in cells:
                    if getattr(cell, "data_type", None) == "f":
                        values.append(FORMULA)
                    else:
                        values.append(cell.value)
                line = next((c.row for c in cells if getattr(c, "row", None)), number)
                yield int(line), values
        except RechargeFileError:
            raise
        except Exception:
            raise RechargeFileError("not a readable XLSX workbook") from None
    finally:
        workbook.close()


# ------------------------------------------------------------------ validation


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _header(cells: list[Any]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = cell.strip().lower() if isinstance(cell, str) else ""
        if name in (*KEY_COLUMNS, "amount", "note"):
            if name in columns:
                raise RechargeFileError(f"the header names {name!r} twice")
            columns[name] = index
        elif not _blank(cell):
            ignored.append(str(cell))
    if "account" in columns and "extension" in columns:
        raise RechargeFileError("the header must name account or extension, not both")
    if "amount" not in columns or not any(k in columns for k in KEY_COLUMNS):
        raise RechargeFileError(
            "the first row must name the columns: account (or extension), amount [, note]"
        )
    return columns, ignored


def _parse(rows: Iterator[tuple[int, list[Any]]], fmt: str, limits: RechargeLimits) -> ParsedFile:
    header: dict[str, int] | None = None
    parsed: ParsedFile | None = None
    seen: dict[str, int] = {}
    data_rows = 0
    for line, cells in rows:
        if all(_blank(c) for c in cells):
            continue
        if header is None:
            header, ignored = _header(cells)
            key_column = "account" if "account" in header else "extension"
            parsed = ParsedFile(fmt, key_column, ignored_columns=ignored)
            continue
        assert parsed is not None
        data_rows += 1
        if data_rows > limits.max_rows:
            raise RechargeFileError(f"the file has more than {limits.max_rows} rows")
        _row(parsed, header, line, cells, seen, limits)
    if parsed is None:
        raise RechargeFileError("the file has no header row")
    if not parsed.rows and not parsed.errors:
        raise RechargeFileError("the file has no recharge rows")
    return parsed


def _cell(cells: list[Any], index: int | None) -> Any:
    return cells[index] if index is not None and index < len(cells) else None


def _row(
    parsed: ParsedFile,
    header: dict[str, int],
    line: int,
    cells: list[Any],
    seen: dict[str, int],
    limits: RechargeLimits,
) -> None:
    errors: list[RowError] = []
    key_column = parsed.key_column
    key, problem = _key(_cell(cells, header[key_column]))
    if problem:
        errors.append(RowError(line, key_column, problem))
    amount, problem = _amount(_cell(cells, header["amount"]), limits.max_amount)
    if problem:
        errors.append(RowError(line, "amount", problem))
    note, problem = _note(_cell(cells, header.get("note")))
    if problem:
        errors.append(RowError(line, "note", problem))
    if key and not errors:
        if key in seen:
            errors.append(
                RowError(line, key_column, f"{key} is already recharged on line {seen[key]}")
            )
        else:
            seen[key] = line
    if errors:
        parsed.errors.extend(errors)
        return
    assert key is not None and amount is not None
    parsed.rows.append(RechargeRow(line, key, amount, note))


def _formula_like(text: str) -> bool:
    return text.startswith(FORMULA_STARTS)


def _key(value: Any) -> tuple[str | None, str | None]:
    if value is FORMULA:
        return None, "formula cells are not accepted"
    if _blank(value):
        return None, "is empty"
    if isinstance(value, bool):
        return None, "must be an account number or extension"
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        if not value.is_integer():
            return None, "must be an account number or extension, not a fraction"
        value = str(int(value))
    if not isinstance(value, str):
        return None, "must be an account number or extension"
    if _formula_like(value):
        return None, "formula-looking text is not accepted"
    text = value.strip()
    if len(text) > _MAX_KEY_LENGTH or not text.isprintable():
        return None, f"must be printable text of at most {_MAX_KEY_LENGTH} characters"
    return text, None


def _amount(value: Any, maximum: Decimal) -> tuple[Decimal | None, str | None]:
    if value is FORMULA:
        return None, "formula cells are not accepted"
    if _blank(value):
        return None, "is empty"
    if isinstance(value, bool):
        return None, "must be a decimal amount"
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        # shortest round-tripping decimal of the double (what the spreadsheet displays)
        text = repr(value)
        if "e" in text or "E" in text or not value == value:
            return None, "must be a plain decimal amount"
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-") and _PLAIN_AMOUNT.match(text[1:]):
            return None, "must be positive"
        if _formula_like(value):
            return None, "formula-looking text is not accepted"
    else:
        return None, "must be a decimal amount"
    if text.startswith("-"):
        return None, "must be positive"
    if not _PLAIN_AMOUNT.match(text):
        return None, f"{text[:32]!r} is not a plain decimal with at most 4 decimals"
    amount = Decimal(text)
    if amount <= 0:
        return None, "must be positive"
    if amount > maximum:
        return None, f"is more than the largest recharge allowed ({maximum})"
    return amount, None


def _note(value: Any) -> tuple[str, str | None]:
    if value is FORMULA:
        return "", "formula cells are not accepted"
    if _blank(value):
        return "", None
    text = str(value) if isinstance(value, int | float) else value
    if not isinstance(text, str):
        return "", "must be text"
    if _formula_like(text):
        return "", "formula-looking text is not accepted"
    if len(text) > _MAX_NOTE_LENGTH:
        return "", f"is longer than {_MAX_NOTE_LENGTH} characters"
    return text.strip(), None
