"""``Columns`` in one file, and back as a read-only memory map.

Layout: ``APOLOLPM``, a 4-byte header length, a JSON header (format, version, byte order,
long prefixes, and per section its offset, type code, item size and count), then the
sections, each 8-byte aligned and in native byte order (the file never leaves its host).
Loading reads the header and casts slices of the map: it takes milliseconds whatever
the plan's size, and the pages are the page cache's, shared by every process mapping
the same file.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import sys
from array import array
from dataclasses import fields
from typing import Any, Literal

from sidecar.rating.lpm_build import Columns

MAGIC = b"APOLOLPM"
FORMAT = 2  # 2: timings, minimum charge, free seconds, effective instants, plan meta
_HEAD = struct.Struct("=8sI")
_Code = Literal["q", "i", "B"]
_TYPES: dict[str, _Code] = {
    "starts": "q", "groups": "q", "buckets": "i", "rows": "q", "tariff_ends": "q",
    "tariff_text": "B", "name_ends": "q", "name_text": "B", "instants": "q",
}  # fmt: skip


def _align(n: int) -> int:
    return (n + 7) & ~7


def save(columns: Columns, path: str | os.PathLike[str]) -> None:
    """Write ``columns`` to ``path`` and fsync it (renaming it into place is the caller's)."""
    sections: dict[str, list[Any]] = {}
    offset = 0
    for name, code in _TYPES.items():
        data = memoryview(getattr(columns, name))
        if data.itemsize != array(code).itemsize:
            raise ValueError(f"{name}: item size {data.itemsize}, expected {code!r}")
        sections[name] = [offset, code, data.itemsize, len(data)]
        offset = _align(offset + data.nbytes)
    header = json.dumps(
        {"format": FORMAT, "version": columns.version, "byteorder": sys.byteorder,
         "shift": columns.shift, "long": columns.long, "timed": columns.timed,
         "meta": columns.meta, "sections": sections},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    start = _align(_HEAD.size + len(header))
    with open(path, "wb") as fh:
        fh.write(_HEAD.pack(MAGIC, len(header)) + header)
        for name in _TYPES:
            at, _, _, _ = sections[name]
            fh.seek(start + at)
            fh.write(memoryview(getattr(columns, name)))
        fh.truncate(start + offset)
        fh.flush()
        os.fsync(fh.fileno())


def load(path: str | os.PathLike[str]) -> Columns:
    """Map the file at ``path`` read-only; ValueError if it is not a whole index file."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < _HEAD.size:
            raise ValueError(f"{path}: not an index file")
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    magic, length = _HEAD.unpack_from(mapped)
    if magic != MAGIC:
        raise ValueError(f"{path}: not an index file")
    if _HEAD.size + length > size:
        raise ValueError(f"{path}: truncated")
    try:
        header = json.loads(mapped[_HEAD.size : _HEAD.size + length])
        columns = _columns(header, memoryview(mapped), _align(_HEAD.size + length), size)
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: damaged header ({exc!r})") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    _check(columns, path)
    return columns


def _columns(header: dict[str, Any], view: memoryview, start: int, size: int) -> Columns:
    if header["format"] != FORMAT or header["byteorder"] != sys.byteorder:
        raise ValueError(f"format {header['format']}/{header['byteorder']} not readable")
    values: dict[str, Any] = {}
    for name, code in _TYPES.items():
        at, stored_code, itemsize, count = header["sections"][name]
        if stored_code != code or itemsize != array(code).itemsize:
            raise ValueError(f"section {name} has the wrong type")
        end = start + at + itemsize * count
        if end > size:
            raise ValueError("truncated")
        values[name] = view[start + at : end].cast(code)
    return Columns(
        version=int(header["version"]), shift=int(header["shift"]), long=header["long"],
        timed=bool(header["timed"]), meta=dict(header["meta"]), **values,
    )  # fmt: skip


def _check(columns: Columns, path: object) -> None:
    """Counts that must agree, so a lookup never reads past a column."""
    groups = len(columns.starts)
    ok = (
        len(columns.groups) == 2 * groups + 2
        and columns.groups[-1] == len(columns.rows)
        and len(columns.rows) % 2 == 0
        and columns.tariff_ends[-1] == len(columns.tariff_text)
        and columns.name_ends[-1] == len(columns.name_text)
        and 0 <= columns.shift <= 60
        and len(columns.buckets) == (1 << (60 - columns.shift)) + 1
        and columns.buckets[-1] == groups
    )
    if not ok:
        raise ValueError(f"{path}: inconsistent index file")


assert set(_TYPES) == {f.name for f in fields(Columns)} - {
    "version",
    "shift",
    "long",
    "timed",
    "meta",
}
