"""``apolo plans`` and ``apolo timings``: a plan's time zone and parent, its timings.

The same services as the API (``sidecar.services.plans``), audited as ``cli:$USER``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from sidecar.db import connect_cli
from sidecar.errors import ApiError
from sidecar.jsonfmt import rfc3339


def actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def run(work: Callable[[Any], Any], commit: bool = True) -> Any:
    """``work(conn)`` in one transaction; an ApiError becomes the command's error."""
    with connect_cli() as conn:
        try:
            result = work(conn)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        if commit:
            conn.commit()
    return result


def echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=_json))


def _json(value: Any) -> str:
    return rfc3339(value) if hasattr(value, "astimezone") else str(value)


@click.group()
def plans() -> None:
    """Rate plans: time zone and parent plan (fallback)."""


@plans.command("create")
@click.argument("name")
@click.option("--currency", default="USD", show_default=True)
@click.option("--tz", "timezone", default="UTC", show_default=True, help="e.g. America/Mexico_City")
@click.option("--parent", default=None, help="plan whose rates price what this plan's do not")
def create_plan(name: str, currency: str, timezone: str, parent: str | None) -> None:
    """Create a rate plan."""
    from sidecar.services.plans import create_plan as create

    echo(run(lambda conn: create(conn, actor(), name, currency, timezone, parent)))


@plans.command("set")
@click.argument("name")
@click.option("--tz", "timezone", default=None, help="a new time zone")
@click.option("--parent", default=None, help="a new parent plan")
@click.option("--no-parent", is_flag=True, help="no fallback any more")
def set_plan(name: str, timezone: str | None, parent: str | None, no_parent: bool) -> None:
    """Change a plan's time zone or parent (a cycle of parents is refused)."""
    from sidecar.services.plans import update_plan

    if parent and no_parent:
        raise click.UsageError("--parent and --no-parent exclude each other")
    body: dict[str, Any] = {}
    if timezone is not None:
        body["timezone"] = timezone
    if parent is not None or no_parent:
        body["parent"] = None if no_parent else parent
    echo(run(lambda conn: update_plan(conn, actor(), name, body)))


@plans.command("list")
def list_plans() -> None:
    """Every plan: currency, time zone, parent, rates, accounts."""
    from sidecar.repo import rate_admin
    from sidecar.services.plans import public_plan

    echo([public_plan(p) for p in run(rate_admin.list_plans, commit=False)])


@plans.command("show")
@click.argument("name")
def show_plan(name: str) -> None:
    """A plan with its timings and normalization rules."""
    from sidecar.services import number_rules
    from sidecar.services.plans import list_timings, plan_or_404, public_plan

    def work(conn: Any) -> dict[str, Any]:
        plan = public_plan(plan_or_404(conn, name))
        plan["timings"] = list_timings(conn, name)
        plan["number_rules"] = number_rules.list_rules(conn, {"plan": name})
        return plan

    echo(run(work, commit=False))


# --------------------------------------------------------------------------- timings


def _timing_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--plan", "plan", required=True, help="rate plan name"),
            click.option("--days", default=None, help="e.g. mon-fri or sat,sun"),
            click.option("--from", "start", default=None, help="HH:MM (plan's time zone)"),
            click.option("--to", "end", default=None, help="HH:MM, 24:00 = midnight"),
            click.option("--dates", default=None, help="e.g. 2026-12-25,2027-01-01"),
        ]
    ):
        command = option(command)
    return command


def _body(
    days: str | None, start: str | None, end: str | None, dates: str | None
) -> dict[str, Any]:
    pairs = (("days", days), ("from", start), ("to", end), ("dates", dates))
    return {key: value for key, value in pairs if value is not None}


@click.group()
def timings() -> None:
    """Timings of a plan: weekdays, a daily window, dates (in the plan's time zone)."""


@timings.command("create")
@click.argument("name")
@_timing_options
def create_timing(
    name: str, plan: str, days: str | None, start: str | None, end: str | None, dates: str | None
) -> None:
    """Create timing NAME (rates name it in their `timing` column)."""
    from sidecar.services.plans import create_timing as create

    body = {"name": name, **_body(days, start, end, dates)}
    echo(run(lambda conn: create(conn, actor(), plan, body)))


@timings.command("update")
@click.argument("name")
@_timing_options
def update_timing(
    name: str, plan: str, days: str | None, start: str | None, end: str | None, dates: str | None
) -> None:
    """Replace timing NAME's days, window and dates (what is not given is cleared)."""
    from sidecar.services.plans import update_timing as update

    echo(run(lambda conn: update(conn, actor(), plan, name, _body(days, start, end, dates))))


@timings.command("list")
@click.option("--plan", "plan", required=True, help="rate plan name")
def list_timings(plan: str) -> None:
    from sidecar.services.plans import list_timings as listed

    echo(run(lambda conn: listed(conn, plan), commit=False))


@timings.command("delete")
@click.argument("name")
@click.option("--plan", "plan", required=True, help="rate plan name")
def delete_timing(name: str, plan: str) -> None:
    """Delete a timing no rate names."""
    from sidecar.services.plans import delete_timing as delete

    run(lambda conn: delete(conn, actor(), plan, name))
    click.echo(f"deleted timing {name!r} of plan {plan!r}")
