"""Query-string parsing shared by the reporting blueprints (clear 400s, never a guess)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flask import request

from sidecar.errors import ApiError
from sidecar.money import parse_money


def bad(message: str, **details: object) -> ApiError:
    return ApiError(400, "invalid_request", message, dict(details))


def timestamp(name: str, required: bool = False) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is UTC."""
    raw = request.args.get(name)
    if not raw:
        if required:
            raise bad(f"{name} is required (ISO 8601, e.g. 2026-01-01T00:00:00Z)")
        return None
    return parse_timestamp(raw, name)


def parse_timestamp(raw: object, name: str) -> datetime:
    if not isinstance(raw, str):
        raise bad(f"{name} must be an ISO 8601 string")
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise bad(f"{name}: {raw!r} is not an ISO 8601 date or date-time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def integer(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit()):
        raise bad(f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise bad(f"{name} must be between {low} and {high}")
    return value


def boolean(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad(f"{name} must be true or false")


def money(name: str) -> Decimal | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_money(raw, name)
    except ValueError as exc:
        raise bad(str(exc)) from None


def digits(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    value = raw.removeprefix("+")
    if not (value.isascii() and value.isdigit()) or len(value) > 32:
        raise bad(f"{name} must be 1-32 digits")
    return value


def text(name: str) -> str | None:
    raw = request.args.get(name)
    return None if raw is None or raw == "" else raw
