"""The value the rating core works on."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from sidecar.rating.timing import Timing

ZERO = Decimal(0)


class Rate(NamedTuple):
    """One rate of a plan. Immutable; a named tuple rather than a frozen dataclass because
    every lookup makes one, and a tuple is made about four times faster."""

    id: int
    prefix: str
    name: str
    rate_per_minute: Decimal
    connection_fee: Decimal
    initial_increment: int
    increment: int
    effective_start: datetime
    effective_end: datetime | None
    priority: int = 0
    enabled: bool = True
    timing: Timing | None = None  # None: at any time
    minimum_charge: Decimal = ZERO  # an answered, charged call never costs less
    free_seconds: int = 0  # calls of at most this many seconds cost nothing

    def in_effect(self, at: datetime) -> bool:
        """``effective_start <= at < effective_end`` (open end when ``effective_end`` is None)."""
        if at < self.effective_start:
            return False
        return self.effective_end is None or at < self.effective_end

    def applies(self, at: datetime) -> bool:
        """In effect at ``at`` and its timing (if any) holds ``at``."""
        return self.in_effect(at) and (self.timing is None or self.timing.contains(at))

    def summary(self) -> dict[str, str | int | None]:
        """The rate as the API and channel variables show it (money as decimal strings)."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "rate_per_minute": str(self.rate_per_minute),
            "connection_fee": str(self.connection_fee),
            "initial_increment": self.initial_increment,
            "increment": self.increment,
            "timing": None if self.timing is None else self.timing.name,
            "minimum_charge": str(self.minimum_charge),
            "free_seconds": self.free_seconds,
        }
