"""Rate-plan CSV import/export: the SQL side.

Import runs in three steps inside the caller's transaction (nothing here commits):

1. :func:`stage_rates` COPYs the validated rows (streamed, never held in a list) into
   a temporary staging table, dropped at commit;
2. :func:`staged_duplicates` finds rows repeating the (prefix, effective_start,
   priority, timing) of an earlier row of the same file, by line number, and
   :func:`staged_unknown_timings` rows naming a timing the plan does not have
   (:func:`staged_errors`: both);
3. :func:`apply_staged` creates/locks the plan, optionally deletes its rates, and
   moves the staged rows into ``rates`` with ONE ``INSERT ... SELECT`` (timing names
   turned into the plan's timing ids).

The rates triggers are statement-level, so an import fires them once (twice with
``replace``: the DELETE and the INSERT), and PostgreSQL folds the identical
``pg_notify('apolo_rates', '')`` calls into one notification at commit. The plan's
version is left exactly one higher than before the import, so workers see one change.
:func:`copy_rates` runs the three steps for callers that do not need them apart.

Export streams a plan's rates through a server-side cursor (:func:`stream_plan_rates`).
Every query uses a tuple-row cursor, whatever row factory the connection has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from sidecar.imports.rates_csv import RateRow, RowError, duplicate_error, unknown_timing_error

DEFAULT_CURRENCY = "USD"
EXPORT_BATCH_ROWS = 10_000

_CREATE_STAGE = """
CREATE TEMP TABLE apolo_rate_stage (
    line              integer NOT NULL,
    prefix            text NOT NULL,
    name              text NOT NULL,
    rate_per_minute   numeric(18,6) NOT NULL,
    connection_fee    numeric(18,6) NOT NULL,
    initial_increment integer NOT NULL,
    increment         integer NOT NULL,
    effective_start   timestamptz NOT NULL,
    effective_end     timestamptz,
    priority          integer NOT NULL,
    enabled           boolean NOT NULL,
    timing            text,
    minimum_charge    numeric(18,6) NOT NULL,
    free_seconds      integer NOT NULL
) ON COMMIT DROP
"""
_COPY_STAGE = """
COPY apolo_rate_stage (line, prefix, name, rate_per_minute, connection_fee,
                       initial_increment, increment, effective_start, effective_end,
                       priority, enabled, timing, minimum_charge, free_seconds)
FROM STDIN (FORMAT BINARY)
"""
_STAGE_TYPES = [
    "int4", "text", "text", "numeric", "numeric", "int4", "int4",
    "timestamptz", "timestamptz", "int4", "bool", "text", "numeric", "int4",
]  # fmt: skip
_SAME = "prefix, effective_start, priority, coalesce(timing, '')"
# how many rows repeat the (prefix, effective_start, priority, timing) of an earlier row
_COUNT_DUPLICATES = f"""
SELECT coalesce(sum(n - 1), 0)
  FROM (SELECT count(*) AS n
          FROM apolo_rate_stage
         GROUP BY {_SAME}
        HAVING count(*) > 1) AS d
"""
# those rows by line, each with the line of the first row of its group
_LIST_DUPLICATES = f"""
SELECT line, first_line
  FROM (SELECT line, min(line) OVER (PARTITION BY {_SAME}) AS first_line
          FROM apolo_rate_stage) AS s
 WHERE line <> first_line
 ORDER BY line
 LIMIT %s
"""
# rows naming a timing the plan (by name; maybe not created yet) does not have
_UNKNOWN_TIMINGS = """
SELECT s.line, s.timing, count(*) OVER () AS total
  FROM apolo_rate_stage s
 WHERE s.timing IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM timings t JOIN rate_plans p ON p.id = t.plan_id
                    WHERE p.name = %s AND t.name = s.timing)
 ORDER BY s.line
 LIMIT %s
"""
_INSERT_STAGED = """
INSERT INTO rates (plan_id, prefix, name, rate_per_minute, connection_fee, initial_increment,
                   increment, effective_start, effective_end, priority, enabled, timing_id,
                   minimum_charge, free_seconds)
SELECT %(plan)s, s.prefix, s.name, s.rate_per_minute, s.connection_fee, s.initial_increment,
       s.increment, s.effective_start, s.effective_end, s.priority, s.enabled, t.id,
       s.minimum_charge, s.free_seconds
  FROM apolo_rate_stage s
  LEFT JOIN timings t ON t.plan_id = %(plan)s AND t.name = s.timing
"""
_EXPORT = """
SELECT r.prefix, r.name, r.rate_per_minute, r.connection_fee, r.initial_increment, r.increment,
       r.effective_start, r.effective_end, r.priority, r.enabled, t.name, r.minimum_charge,
       r.free_seconds
  FROM rates r
  LEFT JOIN timings t ON t.id = r.timing_id
 WHERE r.plan_id = %s
 ORDER BY r.prefix COLLATE "C", r.effective_start, r.priority, r.id
"""


class PlanNotFoundError(LookupError):
    def __init__(self, plan_name: str) -> None:
        super().__init__(f"there is no rate plan named {plan_name!r}")
        self.plan_name = plan_name


class CurrencyMismatchError(ValueError):
    def __init__(self, plan_name: str, currency: str, wanted: str) -> None:
        super().__init__(f"rate plan {plan_name!r} is in {currency}, not {wanted}")
        self.plan_name = plan_name
        self.currency = currency
        self.wanted = wanted


class DuplicateRatesError(ValueError):
    """Rows of one import repeat a (prefix, effective_start, priority, timing) or name a
    timing the plan does not have; ``errors`` lists the first ones by line, ``count`` is
    how many there are in all."""

    def __init__(self, errors: list[RowError], count: int) -> None:
        super().__init__(f"{count} bad rate row(s); first: {errors[0]}")
        self.errors = errors
        self.count = count


@dataclass(frozen=True, slots=True)
class LockedPlan:
    id: int
    version: int
    currency: str


def stage_rates(conn: psycopg.Connection[Any], rows: Iterable[RateRow]) -> int:
    """COPY ``rows`` into a fresh temporary staging table; returns how many were staged."""
    count = 0
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("DROP TABLE IF EXISTS pg_temp.apolo_rate_stage")
        cur.execute(_CREATE_STAGE)
        with cur.copy(_COPY_STAGE) as copy:
            copy.set_types(_STAGE_TYPES)
            for row in rows:
                copy.write_row(_stage_record(row))
                count += 1
    return count


def _stage_record(row: RateRow) -> tuple[Any, ...]:
    return (
        row.line,
        row.prefix,
        row.name,
        row.rate_per_minute,
        row.connection_fee,
        row.initial_increment,
        row.increment,
        row.effective_start,
        row.effective_end,
        row.priority,
        row.enabled,
        row.timing,
        row.minimum_charge,
        row.free_seconds,
    )


def staged_duplicates(
    conn: psycopg.Connection[Any], limit: int = 100
) -> tuple[list[RowError], int]:
    """The first ``limit`` duplicate rows of the staging table, and how many there are.

    A cheap hash aggregate counts them; the lines are only looked up when there are some.
    """
    with conn.cursor(row_factory=tuple_row) as cur:
        total = cur.execute(_COUNT_DUPLICATES).fetchone()
        count = int(total[0]) if total else 0
        if count == 0 or limit <= 0:
            return [], count
        records = cur.execute(_LIST_DUPLICATES, (limit,)).fetchall()
    return [duplicate_error(line, first) for line, first in records], count


def staged_unknown_timings(
    conn: psycopg.Connection[Any], plan_name: str, limit: int = 100
) -> tuple[list[RowError], int]:
    """The first ``limit`` staged rows naming a timing plan ``plan_name`` does not have
    (every named timing, when the plan does not exist yet), and how many there are."""
    with conn.cursor(row_factory=tuple_row) as cur:
        records = cur.execute(_UNKNOWN_TIMINGS, (plan_name, max(limit, 1))).fetchall()
    count = int(records[0][2]) if records else 0
    errors = [unknown_timing_error(line, name, plan_name) for line, name, _ in records]
    return errors[: max(limit, 0)], count


def staged_errors(
    conn: psycopg.Connection[Any], plan_name: str, limit: int = 100
) -> tuple[list[RowError], int]:
    """Duplicates and unknown timings of the staged rows: the first ``limit``, the count."""
    duplicates, duplicate_count = staged_duplicates(conn, limit)
    unknown, unknown_count = staged_unknown_timings(conn, plan_name, limit - len(duplicates))
    return duplicates + unknown, duplicate_count + unknown_count


def lock_plan(
    conn: psycopg.Connection[Any], plan_name: str, currency: str | None = None
) -> LockedPlan:
    """The plan, created when missing (in ``currency``, default USD) and row-locked until
    the transaction ends, so imports into one plan run one after the other.
    A ``currency`` other than an existing plan's raises :class:`CurrencyMismatchError`."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(
            "INSERT INTO rate_plans (name, currency) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (plan_name, currency or DEFAULT_CURRENCY),
        )
        record = cur.execute(
            "SELECT id, version, currency FROM rate_plans WHERE name = %s FOR UPDATE",
            (plan_name,),
        ).fetchone()
    assert record is not None  # inserted above or already there; rows are never renamed
    plan = LockedPlan(int(record[0]), int(record[1]), str(record[2]))
    if currency is not None and currency != plan.currency:
        raise CurrencyMismatchError(plan_name, plan.currency, currency)
    return plan


def apply_staged(
    conn: psycopg.Connection[Any],
    plan_name: str,
    *,
    replace: bool = False,
    currency: str | None = None,
) -> int:
    """Move the staged rows into the plan (after deleting its rates when ``replace``);
    returns the number of rates inserted. Leaves the plan's version one higher."""
    plan = lock_plan(conn, plan_name, currency)
    with conn.cursor(row_factory=tuple_row) as cur:
        if replace:
            cur.execute("DELETE FROM rates WHERE plan_id = %s", (plan.id,))
        cur.execute(_INSERT_STAGED, {"plan": plan.id})
        inserted = cur.rowcount
        # DELETE and INSERT each bumped the version: one import is one change
        cur.execute(
            "UPDATE rate_plans SET version = %s WHERE id = %s AND version > %s",
            (plan.version + 1, plan.id, plan.version + 1),
        )
        cur.execute("DROP TABLE apolo_rate_stage")
    return inserted


def copy_rates(
    conn: psycopg.Connection[Any],
    plan_name: str,
    rows: Iterable[RateRow],
    replace: bool = False,
    currency: str | None = None,
) -> int:
    """Stage, check and insert ``rows`` into the plan in the caller's transaction (no
    commit). Raises :class:`DuplicateRatesError` before touching ``rates`` when rows
    repeat a (prefix, effective_start, priority, timing) or name a timing the plan does
    not have; the caller should then roll back."""
    stage_rates(conn, rows)
    errors, count = staged_errors(conn, plan_name)
    if count:
        raise DuplicateRatesError(errors, count)
    return apply_staged(conn, plan_name, replace=replace, currency=currency)


def stream_plan_rates(
    conn: psycopg.Connection[Any], plan_name: str, batch_rows: int = EXPORT_BATCH_ROWS
) -> Iterator[RateRow]:
    """The plan's rates ordered by (prefix, effective_start, priority), fetched
    ``batch_rows`` at a time by a server-side cursor. Needs an open transaction
    (autocommit off). Raises :class:`PlanNotFoundError` at once for an unknown plan."""
    with conn.cursor(row_factory=tuple_row) as cur:
        record = cur.execute("SELECT id FROM rate_plans WHERE name = %s", (plan_name,)).fetchone()
    if record is None:
        raise PlanNotFoundError(plan_name)
    return _stream(conn, int(record[0]), batch_rows)


def _stream(conn: psycopg.Connection[Any], plan_id: int, batch_rows: int) -> Iterator[RateRow]:
    with conn.cursor(name="apolo_rates_export", row_factory=tuple_row) as cur:
        cur.itersize = batch_rows
        cur.execute(_EXPORT, (plan_id,))
        for record in cur:
            yield _rate_row(record)


def _rate_row(record: tuple[Any, ...]) -> RateRow:
    (prefix, name, rate, fee, initial, increment, start, end, priority, enabled, timing,
     minimum, free) = record  # fmt: skip
    return RateRow(
        prefix=prefix,
        name=name,
        rate_per_minute=rate,
        connection_fee=fee,
        initial_increment=initial,
        increment=increment,
        effective_start=start.astimezone(UTC),
        effective_end=None if end is None else end.astimezone(UTC),
        priority=priority,
        enabled=enabled,
        timing=timing,
        minimum_charge=minimum,
        free_seconds=free,
    )
