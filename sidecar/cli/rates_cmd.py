"""``apolo rates``: import and export a rate plan as CSV.

The file format (columns, defaults, validation, formula escaping on export) is
described in :mod:`sidecar.imports.rates_csv`. An import is all or nothing: the file
is validated while it streams into a staging table, and any error (listed as
``line N: field: message`` on stderr, exit code 1) rolls everything back.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click
import psycopg

from sidecar.imports.rates_csv import ErrorLog, RateRow, RowError, format_rate_csv, iter_rate_rows
from sidecar.repo.rate_import import (
    CurrencyMismatchError,
    PlanNotFoundError,
    apply_staged,
    stage_rates,
    staged_errors,
    stream_plan_rates,
)

ERROR_LIMIT = 100  # errors listed; the rest are only counted
PROGRESS_EVERY = 16_384  # records between progress-bar updates


@click.group("rates")
def rates() -> None:
    """Rate plans: import and export CSV files."""


@rates.command("import")
@click.option("--plan", "plan_name", required=True, help="Rate plan name (created if missing).")
@click.option("--replace", is_flag=True, help="Delete the plan's rates first (default: append).")
@click.option(
    "--currency",
    default=None,
    help="Currency of a plan created by this import [default: USD]; for an existing plan "
    "it must match.",
)
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_cmd(plan_name: str, replace: bool, currency: str | None, csv_file: Path) -> None:
    """Import CSV_FILE into a rate plan, in one transaction."""
    started = time.monotonic()
    plan_name = _plan_name(plan_name)
    currency = _currency(currency)
    with _session() as conn:
        errors, count = _import(conn, csv_file, plan_name, replace, currency)
        if errors:
            conn.rollback()
            _report(errors, csv_file)
            raise click.exceptions.Exit(1)
        conn.commit()
    mode = "replaced its rates" if replace else "appended"
    seconds = time.monotonic() - started
    click.echo(f"imported {count} rates into plan {plan_name!r} ({mode}) in {seconds:.1f}s")


@rates.command("export")
@click.option("--plan", "plan_name", required=True, help="Rate plan name.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (replaced only once complete) [default: standard output].",
)
def export_cmd(plan_name: str, output: Path | None) -> None:
    """Export a rate plan as CSV, ordered by prefix, effective_start, priority.

    Names starting with = + - @ tab or CR get a leading ' so that spreadsheets do not
    run them as formulas.
    """
    started = time.monotonic()
    with _session() as conn:
        try:
            lines = format_rate_csv(stream_plan_rates(conn, plan_name))
        except PlanNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
        if output is None:
            _write_lines(sys.stdout, lines)
            return
        try:
            count = _write_file(output, lines)
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    seconds = time.monotonic() - started
    click.echo(
        f"exported {count} rates of plan {plan_name!r} to {output} in {seconds:.1f}s", err=True
    )


# --------------------------------------------------------------------------- import


def _import(
    conn: psycopg.Connection[Any],
    path: Path,
    plan_name: str,
    replace: bool,
    currency: str | None,
) -> tuple[ErrorLog, int]:
    """Validate and stage the file, check duplicates, then (if clean) apply it.
    Returns the errors and the number of rates inserted; commits nothing."""
    errors = ErrorLog(ERROR_LIMIT)
    now = datetime.now(UTC)
    with open(path, "rb") as raw, _progress(path.stat().st_size) as show:
        # surrogateescape: bytes that are not UTF-8 reach the validator, which names the line
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        accepted = _accepted(iter_rate_rows(text, now), errors, lambda: show(raw.tell()))
        stage_rates(conn, accepted)
    duplicates, total = staged_errors(conn, plan_name, ERROR_LIMIT - len(errors.shown))
    errors.extend(duplicates, total)
    if errors:
        return errors, 0
    _note(f"validated {path.name}; writing the rates...")
    try:
        count = apply_staged(conn, plan_name, replace=replace, currency=currency)
    except CurrencyMismatchError as exc:
        raise click.ClickException(str(exc)) from None
    _audit(conn, plan_name, path, count, replace)
    return errors, count


def _accepted(
    items: Iterable[RateRow | RowError], errors: ErrorLog, tick: Callable[[], None]
) -> Iterator[RateRow]:
    """The valid rows; errors go to ``errors``. Calls ``tick`` now and then."""
    for n, item in enumerate(items, 1):
        if isinstance(item, RowError):
            errors.add(item)
        else:
            yield item
        if n % PROGRESS_EVERY == 0:
            tick()


def _report(errors: ErrorLog, path: Path) -> None:
    for error in sorted(errors.shown, key=lambda e: e.line):
        click.echo(str(error), err=True)
    if errors.omitted:
        click.echo(f"... and {errors.omitted} more error(s) not listed", err=True)
    click.echo(f"{path}: {errors.count} error(s); nothing was imported", err=True)


def _audit(
    conn: psycopg.Connection[Any], plan_name: str, path: Path, count: int, replace: bool
) -> None:
    from sidecar.repo import audit

    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    after = {"file": path.name, "rates": count, "replace": replace}
    audit.record(conn, f"cli:{user}", "rates.import", f"rate_plan:{plan_name}", None, after)


@contextmanager
def _progress(total_bytes: int) -> Iterator[Callable[[int], None]]:
    """``show(bytes_read)``: a progress bar on stderr when it is a terminal, else nothing."""
    stderr = sys.stderr
    if not stderr.isatty():
        yield lambda _: None
        return
    with click.progressbar(length=total_bytes, label="importing", file=stderr) as bar:
        yield lambda done: bar.update(max(0, min(done, total_bytes) - bar.pos))
        bar.update(total_bytes - bar.pos)


def _note(message: str) -> None:
    """A progress message on stderr when it is a terminal."""
    if sys.stderr.isatty():
        click.echo(message, err=True)


def _plan_name(value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be empty", param_hint="--plan")
    return value


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if len(code) != 3 or not (code.isascii() and code.isalpha()):
        raise click.BadParameter(
            "expected a 3-letter ISO 4217 code such as USD", param_hint="--currency"
        )
    return code


# --------------------------------------------------------------------------- export


def _write_lines(out: TextIO, lines: Iterable[str]) -> int:
    """Write the CSV lines; returns the number of data rows (the header not counted)."""
    written = 0
    for line in lines:
        out.write(line)
        written += 1
    return max(written - 1, 0)


def _write_file(path: Path, lines: Iterable[str]) -> int:
    """Write to a temporary file beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            count = _write_lines(out, lines)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return count


# --------------------------------------------------------------------------- database


def _connect() -> psycopg.Connection[Any]:
    """``sidecar.db.connect_cli()`` (autocommit off); plain DATABASE_URL if it is missing."""
    try:
        from sidecar.db import connect_cli
    except ImportError:
        url = os.environ.get("DATABASE_URL")
        if not url:
            raise click.ClickException("DATABASE_URL is not set") from None
        return psycopg.connect(url, autocommit=False)
    return connect_cli()


@contextmanager
def _session() -> Iterator[psycopg.Connection[Any]]:
    """A connection closed at the end, discarding whatever was not committed."""
    try:
        conn = _connect()
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot connect to the database: {exc}") from None
    try:
        yield conn
    except psycopg.Error as exc:
        raise click.ClickException(f"database error: {exc}") from None
    finally:
        conn.close()  # an uncommitted transaction is discarded
