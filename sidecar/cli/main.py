"""``apolo``: the operator's command line."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from decimal import Decimal

import click

from sidecar.cli.accounts_cmd import accounts
from sidecar.cli.cdr_cmd import cdr
from sidecar.cli.control_cmd import control
from sidecar.cli.controls_cmd import controls
from sidecar.cli.cucm_cmd import cucm
from sidecar.cli.cucm_devices_cmd import devices as cucm_devices
from sidecar.cli.demo_cmd import demo
from sidecar.cli.numbers_cmd import numbers
from sidecar.cli.plans_cmd import plans, timings
from sidecar.cli.rates_cmd import rates
from sidecar.cli.reports_cmd import alerts, import_legacy, rerate
from sidecar.cli.simulate_cmd import simulate
from sidecar.cli.tokens_cmd import tokens
from sidecar.cli.trunks_cmd import trunks
from sidecar.cli.users_cmd import users
from sidecar.db import connect_cli


@click.group()
def cli() -> None:
    """Apolo: real-time billing for FreeSWITCH."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations from sql/ (idempotent)."""
    from sidecar.migrations import upgrade

    with connect_cli() as conn:
        applied = upgrade(conn)
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@cli.command()
@click.option(
    "--bind",
    default=lambda: os.environ.get("APOLO_BIND", "127.0.0.1:8080"),
    show_default="127.0.0.1:8080 (APOLO_BIND)",
)
@click.option(
    "--workers",
    type=int,
    default=lambda: int(os.environ.get("APOLO_WORKERS", "2")),
    show_default="2 (APOLO_WORKERS)",
)
@click.option(
    "--threads",
    type=int,
    default=lambda: int(os.environ.get("APOLO_THREADS", "8")),
    show_default="8 (APOLO_THREADS)",
)
@click.option(
    "--access-log/--no-access-log",
    default=lambda: os.environ.get("APOLO_ACCESS_LOG", "true").lower() in {"1", "true", "yes"},
    show_default="on (APOLO_ACCESS_LOG)",
    help="one line per request on stdout (costs a few percent at busy hour)",
)
def serve(bind: str, workers: int, threads: int, access_log: bool) -> None:
    """Serve the sidecar with gunicorn (threaded workers keep FreeSWITCH's connections alive)."""
    os.environ.setdefault("APOLO_DB_POOL_SIZE", str(threads))
    # the workers add up their /metrics counters through files in this directory; it must
    # start empty, or counters of an earlier run would be counted again
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="apolo-metrics-"
    )
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    argv = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers)]
    argv += ["--config", "python:sidecar.gunicorn_conf"]  # libraries shared by the workers
    argv += ["--worker-class", "gthread", "--threads", str(threads)]
    argv += ["--keep-alive", "75", "--graceful-timeout", "20"]
    # gunicorn 27's control socket is one path per user (~/.gunicorn/gunicorn.ctl): every
    # sidecar on the host would take it over from the one before; Apolo does not use it
    argv += ["--no-control-socket"]
    if access_log:  # secrets a client put in a URL are redacted (sidecar/access_log.py)
        argv += ["--access-logfile", "-", "--logger-class", "sidecar.access_log.RedactingLogger"]
    argv.append("sidecar:create_app()")
    os.execv(sys.executable, argv)  # noqa: S606 - replaces this process with gunicorn


@cli.group()
def reservations() -> None:
    """Balance reservations."""


@reservations.command("expire")
def reservations_expire() -> None:
    """Release every reservation past its expiry (their CDR never came)."""
    from sidecar.repo import reservations as reservations_repo

    with connect_cli() as conn:
        rows = reservations_repo.expire_overdue(conn)
        conn.commit()
    total = sum((Decimal(r["amount"]) for r in rows), Decimal(0))
    click.echo(f"expired {len(rows)} reservation(s), released {total}")


def _whoami() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


cli.add_command(accounts)
cli.add_command(demo)
cli.add_command(rates)
cli.add_command(plans)
cli.add_command(timings)
cli.add_command(numbers)
cli.add_command(cdr)
cli.add_command(simulate)
cli.add_command(cucm)
cli.add_command(control)
cli.add_command(tokens)
cli.add_command(trunks)
cli.add_command(users)
cli.add_command(rerate)
cli.add_command(alerts)
cli.add_command(controls)
cucm.add_command(cucm_devices)
rates.add_command(import_legacy)
