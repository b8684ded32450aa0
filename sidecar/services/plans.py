"""Rate plans' settings (time zone, parent plan) and timings: shared by the API, the CLI
and the dashboard, each change audited. Errors are ``ApiError`` (the CLI shows the
message)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import psycopg

from sidecar.errors import ApiError
from sidecar.rating.timing import (
    DAY_SECONDS,
    Timing,
    format_clock,
    format_days,
    parse_clock,
    parse_dates,
    parse_days,
)
from sidecar.rating.zones import UnknownZoneError, zone
from sidecar.repo import audit, timings
from sidecar.repo import rate_admin as repo

MAX_DATES = 1000
TIMING_KEYS = frozenset({"name", "days", "from", "to", "dates"})
PLAN_KEYS = frozenset({"timezone", "parent"})  # what update_plan changes
T = TypeVar("T")


def bad(message: str, **details: object) -> ApiError:
    return ApiError(400, "invalid_request", message, dict(details))


def plan_or_404(conn: psycopg.Connection[Any], name: str, lock: bool = False) -> dict[str, Any]:
    plan = repo.get_plan(conn, name, lock)
    if plan is None:
        raise ApiError(404, "plan_not_found", f"no rate plan named {name!r}")
    return plan


def public_plan(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "parent_id"}


def check_timezone(value: object) -> str:
    if not isinstance(value, str):
        raise bad("timezone must be a time zone name such as UTC or America/Mexico_City")
    try:
        zone(value)
    except UnknownZoneError as exc:
        raise bad(f"timezone: {exc}") from None
    return value


def _parent_id(conn: psycopg.Connection[Any], parent: object) -> int | None:
    if parent is None:
        return None
    if not isinstance(parent, str) or not parent.strip():
        raise bad("parent must be the name of another rate plan, or null")
    return int(plan_or_404(conn, parent)["id"])


def _cycle(exc: psycopg.errors.CheckViolation) -> ApiError:
    if exc.diag.constraint_name == "rate_plans_parent_cycle":
        return ApiError(409, "plan_cycle", str(exc.diag.message_primary))
    raise exc


def create_plan(
    conn: psycopg.Connection[Any],
    actor: str,
    name: object,
    currency: object = "USD",
    timezone: object = "UTC",
    parent: object = None,
) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise bad("name is required (1-200 characters)")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise bad("currency must be a 3-letter ISO 4217 code")
    tz = check_timezone(timezone)
    parent_id = _parent_id(conn, parent)
    plan_id = repo.create_plan(conn, name, currency.upper(), tz, parent_id)
    if plan_id is None:
        raise ApiError(409, "plan_exists", f"a rate plan named {name!r} exists")
    created = plan_or_404(conn, name)
    audit.record(conn, actor, "rate_plan.create", f"rate_plan:{name}", None, created)
    return public_plan(created)


def update_plan(
    conn: psycopg.Connection[Any], actor: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``body`` may set ``timezone`` and ``parent`` (a plan name, or None for none)."""
    unknown = sorted(set(body) - PLAN_KEYS)
    if unknown:
        raise bad(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    if not body:
        raise bad("nothing to change")
    before = plan_or_404(conn, name, lock=True)
    values: dict[str, Any] = {}
    if "timezone" in body:
        values["timezone"] = check_timezone(body["timezone"])
    if "parent" in body:
        values["parent_id"] = _parent_id(conn, body["parent"])
    try:
        with conn.transaction():
            repo.update_plan(conn, int(before["id"]), values)
    except psycopg.errors.CheckViolation as exc:
        raise _cycle(exc) from None
    after = plan_or_404(conn, name)
    audit.record(conn, actor, "rate_plan.update", f"rate_plan:{name}", before, after)
    return public_plan(after)


# --------------------------------------------------------------------------- timings


def public_timing(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "days": format_days(row["weekdays"]) if row["weekdays"] else "",
        "from": format_clock(row["start_second"]),
        "to": format_clock(row["end_second"]),
        "dates": [d.isoformat() for d in sorted(row["dates"])],
        "rates": row.get("rates", 0),
        "created_at": row["created_at"],
    }


def parse_timing(body: dict[str, Any]) -> tuple[list[int], int, int, list[date]]:
    """(weekdays, start second, end second, dates) from ``days`` (``mon-fri``), ``from``
    and ``to`` (``HH:MM``; one alone runs to midnight / from midnight), ``dates``
    (``2026-12-25,...`` or a list); at least one of them."""
    unknown = sorted(set(body) - TIMING_KEYS)
    if unknown:
        raise bad(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    raw = dict(body)
    if isinstance(raw.get("dates"), list) and all(isinstance(d, str) for d in raw["dates"]):
        raw["dates"] = ",".join(raw["dates"])
    errors: dict[str, str] = {}

    def text(field: str) -> str | None:
        value = raw.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            errors[field] = "must be a string"
            return None
        return value

    def parsed(field: str, parse: Callable[[str], T], default: T) -> T:
        value = text(field)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            errors[field] = str(exc)
            return default

    no_days: frozenset[int] = frozenset()
    no_dates: frozenset[date] = frozenset()
    days = parsed("days", parse_days, no_days)
    start = parsed("from", parse_clock, 0)
    end = parsed("to", lambda v: parse_clock(v, end=True), DAY_SECONDS)
    dates = parsed("dates", parse_dates, no_dates)
    if errors:
        raise bad("invalid timing", fields=errors)
    if not days and not dates and start == 0 and end == DAY_SECONDS:
        raise bad("a timing needs days, a daily window (from/to) or dates")
    if len(dates) > MAX_DATES:
        raise bad(f"at most {MAX_DATES} dates")
    try:
        Timing(0, "check", zone("UTC"), days, start, end, dates)
    except ValueError as exc:
        raise bad(str(exc)) from None
    return sorted(days), start, end, sorted(dates)


def check_timing_name(name: object) -> str:
    ok = isinstance(name, str) and 1 <= len(name) <= 64 and name.isascii()
    if not ok or not all(c.isalnum() or c in "_.-" for c in str(name)):
        raise bad("name: 1-64 of A-Z a-z 0-9 _ . -")
    return str(name)


def create_timing(
    conn: psycopg.Connection[Any], actor: str, plan_name: str, body: dict[str, Any]
) -> dict[str, Any]:
    plan = plan_or_404(conn, plan_name)
    name = check_timing_name(body.get("name"))
    weekdays, start, end, dates = parse_timing(body)
    created_id = timings.create(
        conn, int(plan["id"]), name, weekdays=weekdays, start_second=start, end_second=end,
        dates=dates,
    )  # fmt: skip
    if created_id is None:
        raise ApiError(409, "timing_exists", f"plan {plan_name!r} has a timing named {name!r}")
    created = timing_or_404(conn, int(plan["id"]), plan_name, name)
    target = f"timing:{plan_name}/{name}"
    audit.record(conn, actor, "timing.create", target, None, public_timing(created))
    return public_timing(created)


def timing_or_404(
    conn: psycopg.Connection[Any], plan_id: int, plan_name: str, name: str, lock: bool = False
) -> dict[str, Any]:
    found = timings.get(conn, plan_id, name, lock)
    if found is None:
        raise ApiError(404, "timing_not_found", f"plan {plan_name!r} has no timing {name!r}")
    return found


def update_timing(
    conn: psycopg.Connection[Any], actor: str, plan_name: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Replace the timing's days, window and dates (what ``body`` leaves out is cleared)."""
    plan = plan_or_404(conn, plan_name)
    before = timing_or_404(conn, int(plan["id"]), plan_name, name, lock=True)
    if "name" in body and body["name"] != name:
        raise bad("a timing cannot be renamed (rates name it); create another")
    weekdays, start, end, dates = parse_timing(body)
    timings.update(
        conn, int(before["id"]), weekdays=weekdays, start_second=start, end_second=end, dates=dates
    )
    after = timing_or_404(conn, int(plan["id"]), plan_name, name)
    target = f"timing:{plan_name}/{name}"
    audit.record(conn, actor, "timing.update", target, public_timing(before), public_timing(after))
    return public_timing(after)


def delete_timing(conn: psycopg.Connection[Any], actor: str, plan_name: str, name: str) -> None:
    plan = plan_or_404(conn, plan_name)
    before = timing_or_404(conn, int(plan["id"]), plan_name, name, lock=True)
    if before["rates"]:
        raise ApiError(
            409, "timing_in_use", f"{before['rates']} rate(s) of plan {plan_name!r} name {name!r}"
        )
    timings.delete(conn, int(before["id"]))
    audit.record(conn, actor, "timing.delete", f"timing:{plan_name}/{name}",
                 public_timing(before), None)  # fmt: skip


def list_timings(conn: psycopg.Connection[Any], plan_name: str) -> list[dict[str, Any]]:
    plan = plan_or_404(conn, plan_name)
    return [public_timing(t) for t in timings.list_for_plan(conn, int(plan["id"]))]
