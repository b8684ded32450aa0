"""CDR Repository file names: ``cdr|cmr_<cluster>_<node>_<yyyymmddhhmm>_<seq>``.

The cluster id may itself hold ``_`` and ``-``, so the name is split from the right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sidecar.cucm.errors import CucmFileError

_TAIL = re.compile(r"_(?P<node>[0-9]+)_(?P<stamp>[0-9]{12})_(?P<seq>[0-9]+)\Z")
_CLUSTER = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")
MAX_NAME = 255


@dataclass(frozen=True)
class FileName:
    kind: str  # "cdr" or "cmr"
    cluster: str
    node: int
    stamp: datetime  # UTC, minute precision
    seq: int
    name: str


def parse_file_name(name: str) -> FileName:
    if not name or len(name) > MAX_NAME or "/" in name or "\\" in name or "\x00" in name:
        raise CucmFileError(f"file name {name[:80]!r} is not a plain CUCM file name")
    kind, sep, rest = name.partition("_")
    if not sep or kind not in ("cdr", "cmr"):
        raise CucmFileError(f"file name {name!r} does not start with cdr_ or cmr_")
    tail = _TAIL.search(rest)
    if tail is None:
        raise CucmFileError(f"file name {name!r} does not end with _<node>_<yyyymmddhhmm>_<seq>")
    cluster = rest[: tail.start()]
    if not _CLUSTER.match(cluster):
        raise CucmFileError(f"file name {name!r} has no valid cluster id")
    try:
        stamp = datetime.strptime(tail["stamp"], "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        raise CucmFileError(f"file name {name!r} holds an impossible date") from None
    return FileName(kind, cluster, int(tail["node"]), stamp, int(tail["seq"]), name)
