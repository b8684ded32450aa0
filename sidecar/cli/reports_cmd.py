"""``apolo rates import-legacy``, ``apolo rerate`` and ``apolo alerts`` (reporting side)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from sidecar.db import connect_cli
from sidecar.imports.legacy_zones import convert
from sidecar.repo import audit, rate_import
from sidecar.services import alerts as alerts_service
from sidecar.services import rerating

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _actor() -> str:
    return "cli:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [{k.strip(): v for k, v in row.items() if k} for row in csv.DictReader(handle)]


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO 8601", param_hint=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@click.command("import-legacy")
@click.option("--plan", "plan_name", required=True, help="Rate plan (created if missing).")
@click.option("--zones", type=_FILE, required=True, help="CSV: id, zone_name, description")
@click.option("--prefixes", type=_FILE, required=True, help="CSV: zone_id, prefix, enabled")
@click.option(
    "--rate-zones",
    type=_FILE,
    required=True,
    help="CSV: zone_id, rate_per_second (or the legacy per-second rate_per_minute),"
    " billing_increment, priority, enabled",
)
@click.option("--effective-start", default=None, help="ISO 8601 [default: now]")
@click.option("--replace", is_flag=True, help="Delete the plan's rates first.")
def import_legacy(
    plan_name: str,
    zones: Path,
    prefixes: Path,
    rate_zones: Path,
    effective_start: str | None,
    replace: bool,
) -> None:
    """Import the legacy zones/prefixes/rate_zones tables into a rate plan (all or nothing;
    per-second rates x 60, exact)."""
    start = _when(effective_start, "--effective-start") or datetime.now(UTC)
    rows, problems = convert(_read_csv(zones), _read_csv(prefixes), _read_csv(rate_zones), start)
    if problems:
        for problem in problems[:100]:
            click.echo(str(problem), err=True)
        click.echo(f"{len(problems)} error(s); nothing was imported", err=True)
        raise click.exceptions.Exit(1)
    with connect_cli() as conn:
        try:
            count = rate_import.copy_rates(conn, plan_name, rows, replace=replace)
        except rate_import.DuplicateRatesError as exc:
            conn.rollback()
            for error in exc.errors:
                click.echo(f"prefixes {error}", err=True)
            click.echo(f"{exc.count} duplicate rate(s); nothing was imported", err=True)
            raise click.exceptions.Exit(1) from None
        after = {"source": "legacy zones", "rates": count, "replace": replace}
        audit.record(conn, _actor(), "rates.import", f"rate_plan:{plan_name}", None, after)
        conn.commit()
    click.echo(f"imported {count} rates into plan {plan_name!r} from the legacy zone tables")


@click.group("rerate")
def rerate() -> None:
    """Re-price charged CDRs with the rates now in effect (ledger adjustments)."""


def _scope(conn: Any, start: str, end: str, plan: str | None, account: str | None) -> Any:
    from sidecar.repo import accounts as accounts_repo
    from sidecar.repo import rates as rates_repo

    begin, finish = _when(start, "--from"), _when(end, "--to")
    assert begin is not None and finish is not None
    if finish <= begin:
        raise click.BadParameter("must be later than --from", param_hint="--to")
    plan_id = None if plan is None else rates_repo.plan_id_by_name(conn, plan)
    if plan is not None and plan_id is None:
        raise click.ClickException(f"no rate plan named {plan!r}")
    account_id = None
    if account is not None:
        found = accounts_repo.find_for_call(conn, account, "")
        if found is None:
            raise click.ClickException(f"no account {account}")
        account_id = int(found["id"])
    return rerating.Scope(begin, finish, plan_id, account_id)


def _rerate_options(fn: Any) -> Any:
    for option in (
        click.option("--account", default=None),
        click.option("--plan", default=None),
        click.option("--to", "end", required=True, help="ISO 8601, exclusive (answer time)"),
        click.option("--from", "start", required=True, help="ISO 8601, inclusive (answer time)"),
    ):
        fn = option(fn)
    return fn


@rerate.command("preview")
@_rerate_options
def rerate_preview(start: str, end: str, plan: str | None, account: str | None) -> None:
    """Print what applying would change (JSON); changes nothing."""
    with connect_cli() as conn:
        result = rerating.preview(conn, _scope(conn, start, end, plan, account))
        conn.rollback()
    click.echo(json.dumps(result, indent=2, default=str))


@rerate.command("apply")
@_rerate_options
def rerate_apply(start: str, end: str, plan: str | None, account: str | None) -> None:
    """Re-price and adjust balances in one transaction (idempotent)."""
    with connect_cli() as conn:
        result = rerating.apply(conn, _scope(conn, start, end, plan, account), _actor())
        conn.commit()
    summary = {k: v for k, v in result.items() if k != "items"}
    click.echo(json.dumps(summary, indent=2, default=str))


@click.group("alerts")
def alerts() -> None:
    """Alert webhooks: low-balance and fraud-control alerts (one outbox)."""


@alerts.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due now and exit.")
def alerts_deliver(once: bool) -> None:
    """POST queued webhooks to APOLO_WEBHOOK_URL (signed with APOLO_WEBHOOK_SECRET),
    retrying failures with back-off; runs until SIGTERM/SIGINT unless --once."""
    from sidecar.config import load_settings

    settings = alerts_service.WebhookSettings.from_env()
    if not settings.url or not settings.secret:
        raise click.ClickException("set APOLO_WEBHOOK_URL and APOLO_WEBHOOK_SECRET")
    url = load_settings().database_url
    if once:
        with connect_cli(url) as conn:
            conn.autocommit = True
            delivered, failed = alerts_service.deliver_due(conn, settings)
        click.echo(f"delivered {delivered}, failed {failed}")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    alerts_service.delivery_loop(url, settings, stop)
