"""CUCM CDR/CMR flat files: line 1 field names, line 2 field types, then one row per line.

Columns are mapped by name, case-insensitively, so every CUCM layout (118, 129, 133 CDR
columns; 19 or 48 CMR columns) works. Values may be quoted or not. The whole file is
checked before anything is returned: any bad row fails the file (``CucmFileError``
naming the line), so a caller can keep a file all-or-nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.cucm.convert import to_int, to_uuid
from sidecar.cucm.errors import CucmFileError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}\Z")
_INTEGER_TYPES = frozenset({"INTEGER", "INT", "BIGINT", "SMALLINT"})
MAX_COLUMNS = 1000

REQUIRED = {
    "cdr": (
        "cdrRecordType",
        "globalCallID_callManagerId",
        "globalCallID_callId",
        "origLegCallIdentifier",
        "destLegIdentifier",
        "dateTimeOrigination",
        "dateTimeConnect",
        "dateTimeDisconnect",
        "duration",
        "callingPartyNumber",
        "finalCalledPartyNumber",
        "destDeviceName",
        "pkid",
    ),
    "cmr": ("cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId", "pkid"),
}

Value = int | str | None


@dataclass(frozen=True)
class FlatRow:
    line: int
    values: Mapping[str, Value]  # lower-cased column name -> typed value
    columns: tuple[str, ...]  # names as written, in file order

    def get(self, name: str) -> Value:
        return self.values.get(name.lower())

    def text(self, name: str) -> str:
        value = self.values.get(name.lower())
        return "" if value is None else str(value)

    def integer(self, name: str) -> int | None:
        value = self.values.get(name.lower())
        return value if isinstance(value, int) else None

    def as_json(self) -> dict[str, Any]:
        """Every column under its original name, typed (ints stay ints, empties are null)."""
        return {name: self.values[name.lower()] for name in self.columns}


@dataclass(frozen=True)
class FlatFile:
    kind: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[FlatRow, ...]


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        raise CucmFileError("the file holds NUL bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CucmFileError(f"the file is not UTF-8 (byte {exc.start})") from None


def _header(cells: list[str], kind: str) -> tuple[str, ...]:
    if not cells or len(cells) > MAX_COLUMNS:
        raise CucmFileError("no field names (or too many)", 1)
    names = tuple(c.strip() for c in cells)
    seen: set[str] = set()
    for name in names:
        if not _NAME.match(name):
            raise CucmFileError(f"{name[:40]!r} is not a field name", 1)
        if name.lower() in seen:
            raise CucmFileError(f"field {name!r} appears twice", 1)
        seen.add(name.lower())
    missing = [r for r in REQUIRED[kind] if r.lower() not in seen]
    if missing:
        raise CucmFileError(f"not a {kind.upper()} file: missing {', '.join(missing)}", 1)
    return names


def _typed(raw: str, type_: str, column: str, line: int) -> Value:
    try:
        if type_ in _INTEGER_TYPES:
            return to_int(raw)
        if type_ == "UNIQUEIDENTIFIER":
            return None if raw.strip() == "" else to_uuid(raw)
    except ValueError as exc:
        raise CucmFileError(f"{column} ({type_}): {exc}", line) from None
    return raw


def parse_flat_file(data: bytes, kind: str) -> FlatFile:
    """Parse a whole CDR (``kind="cdr"``) or CMR (``"cmr"``) file, or raise CucmFileError."""
    if kind not in REQUIRED:
        raise CucmFileError(f"unknown file kind {kind!r}")
    reader = csv.reader(io.StringIO(_decode(data), newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise CucmFileError("the file is empty")
        columns = _header(header, kind)
        type_cells = next(reader, None)
        if type_cells is None:
            raise CucmFileError("no field types line", 2)
        if len(type_cells) != len(columns):
            raise CucmFileError(f"{len(type_cells)} field types for {len(columns)} field names", 2)
        types = tuple(t.strip().upper() for t in type_cells)
        rows: list[FlatRow] = []
        blank_at: int | None = None
        for cells in reader:
            line = reader.line_num
            if not cells:
                blank_at = blank_at or line
                continue
            if blank_at is not None:
                raise CucmFileError("blank line inside the data", blank_at)
            if len(cells) != len(columns):
                raise CucmFileError(f"{len(cells)} values for {len(columns)} columns", line)
            values = {
                name.lower(): _typed(raw, type_, name, line)
                for name, type_, raw in zip(columns, types, cells, strict=True)
            }
            rows.append(FlatRow(line, values, columns))
    except csv.Error as exc:
        raise CucmFileError(f"unreadable CSV: {exc}", reader.line_num) from None
    return FlatFile(kind, columns, types, tuple(rows))
