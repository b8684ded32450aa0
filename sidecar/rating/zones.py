"""Time zones by IANA name, from the ``tzdata`` package pinned in the lock.

The pinned database comes first so that every host prices the same instant the same way
whatever its operating system ships (a country that moves its DST rules changes prices
only when the lock is upgraded); the system database (``/usr/share/zoneinfo``, Debian's
``tzdata``) is the fallback for a name the package lacks.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,2}")


class UnknownZoneError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a time zone name such as UTC or America/Mexico_City")
        self.name = name


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The zone called ``name`` (e.g. ``America/Mexico_City``); UnknownZoneError if none."""
    if not _NAME.fullmatch(name) or name.startswith("-"):
        raise UnknownZoneError(name)
    try:
        data = resources.files("tzdata").joinpath("zoneinfo", *name.split("/"))
        if data.is_file():
            with data.open("rb") as fh:
                return ZoneInfo.from_file(fh, key=name)
    except ModuleNotFoundError:
        pass
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownZoneError(name) from None
