"""Typed conversions of CUCM flat-file values.

INTEGER columns are stored as bigint: cause codes (e.g. 0x57000029) and packed IPv4
addresses exceed 2^31. IPv4 fields are the four address bytes packed little-endian.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

_INT = re.compile(r"-?[0-9]{1,20}\Z")
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
# CUCM writes epoch seconds; anything past 9999-12-31 is not a time
_MAX_EPOCH = 253_402_300_799


def to_int(text: str) -> int | None:
    """An INTEGER value: None when empty; ValueError when not a bigint."""
    value = text.strip()
    if value == "":
        return None
    if not _INT.match(value):
        raise ValueError(f"{text[:40]!r} is not an integer")
    number = int(value)
    if not BIGINT_MIN <= number <= BIGINT_MAX:
        raise ValueError(f"{value} is outside the bigint range")
    return number


def to_uuid(text: str) -> str:
    value = text.strip()
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a UUID") from None


def epoch_to_utc(seconds: int | None) -> datetime | None:
    """UTC instant of CUCM epoch seconds; None for 0 / empty (e.g. never connected)."""
    if seconds is None or seconds == 0:
        return None
    if not 0 < seconds <= _MAX_EPOCH:
        raise ValueError(f"{seconds} is not a valid epoch time")
    return datetime.fromtimestamp(seconds, tz=UTC)


def ipv4_from_le(packed: int | None) -> str | None:
    """Dotted IPv4 of a little-endian packed address (signed or unsigned 32-bit); None for 0."""
    if packed is None or packed == 0:
        return None
    if not -(2**31) <= packed < 2**32:
        raise ValueError(f"{packed} is not a packed IPv4 address")
    value = packed & 0xFFFFFFFF
    return ".".join(str((value >> shift) & 0xFF) for shift in (0, 8, 16, 24))
