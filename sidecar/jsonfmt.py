"""How values look on the wire: RFC 3339 UTC timestamps and money as decimal strings."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider


def rfc3339(value: datetime) -> str:
    """``2026-12-05T11:19:59.123456Z``: always UTC, always microseconds. A naive value is a
    UTC wall time (PostgreSQL ``timestamp`` columns and ``date_trunc`` keys are kept in UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="microseconds").replace("+00:00", "Z")


class ApoloJSONProvider(DefaultJSONProvider):
    """Flask's provider, but datetimes in RFC 3339 (Flask's own default is RFC 1123) and
    Decimal as its exact string (``format(d, "f")``, never exponent notation)."""

    sort_keys = False

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, datetime):
            return rfc3339(o)
        if isinstance(o, date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return format(o, "f")
        return DefaultJSONProvider.default(o)
