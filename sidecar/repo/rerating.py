"""Rerating: the charged CDRs of a range, the plans' rates, and the stored runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from sidecar.repo.rates import RATE_ROW_COLUMNS

_SCOPE = """
  FROM cdrs c JOIN accounts a ON a.id = c.account_id
 WHERE c.billing_status = 'charged' AND c.answer_at >= %s AND c.answer_at < %s
"""


def _scope(
    start: datetime, end: datetime, plan_id: int | None, account_id: int | None
) -> tuple[str, list[object]]:
    sql = _SCOPE
    params: list[object] = [start, end]
    if plan_id is not None:
        sql += " AND a.plan_id = %s"
        params.append(plan_id)
    if account_id is not None:
        sql += " AND c.account_id = %s"
        params.append(account_id)
    return sql, params


def lock_accounts_in_scope(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    plan_id: int | None,
    account_id: int | None,
) -> None:
    """Row-lock, in id order (no deadlock with another run), every account of the range,
    so no charge or other run moves their balance until this transaction ends."""
    scope, params = _scope(start, end, plan_id, account_id)
    conn.execute(
        "SELECT id FROM accounts WHERE id IN (SELECT DISTINCT c.account_id"
        + scope
        + ") ORDER BY id FOR UPDATE",
        params,
    )


def charged_cdrs(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    plan_id: int | None,
    account_id: int | None,
) -> list[dict[str, Any]]:
    """The charged CDRs answered in ``[start, end)``, with their account's current plan."""
    scope, params = _scope(start, end, plan_id, account_id)
    return conn.execute(
        "SELECT c.id, c.call_uuid, c.account_id, a.number AS account, a.plan_id,"
        " c.destination, c.answer_at, c.billsec, c.cost, c.rate_id, c.spans"
        + scope
        + " ORDER BY c.id",
        params,
    ).fetchall()


def plan_rate_rows(conn: psycopg.Connection[Any], plan_id: int) -> Iterator[tuple[Any, ...]]:
    """The plan's enabled rates in ``RateIndex.from_rows`` column order, read in the
    caller's transaction (so the run prices with exactly the rates it sees)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(
            f"SELECT {RATE_ROW_COLUMNS} FROM rates WHERE plan_id = %s AND enabled"
            " ORDER BY prefix, priority DESC, effective_start DESC, id",
            (plan_id,),
        )
        yield from cur


def create_run(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    start: datetime,
    end: datetime,
    plan_id: int | None,
    account_id: int | None,
    cdrs: int,
    total_delta: Decimal,
) -> int:
    row = conn.execute(
        "INSERT INTO rerate_runs (actor, range_from, range_to, plan_id, account_id, cdrs,"
        " total_delta) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (actor, start, end, plan_id, account_id, cdrs, total_delta),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def record_item(
    conn: psycopg.Connection[Any],
    run_id: int,
    cdr_id: int,
    old_cost: Decimal,
    new_cost: Decimal,
    old_rate_id: int | None,
    new_rate_id: int,
) -> None:
    conn.execute(
        "INSERT INTO rerate_items (run_id, cdr_id, old_cost, new_cost, old_rate_id, new_rate_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (run_id, cdr_id, old_cost, new_cost, old_rate_id, new_rate_id),
    )


def reprice_cdr(
    conn: psycopg.Connection[Any],
    cdr_id: int,
    *,
    cost: Decimal,
    rate_id: int,
    rate_prefix: str,
    rate_per_minute: Decimal,
    connection_fee: Decimal,
    billed_seconds: int,
    spans: list[dict[str, Any]],
    note: str,
) -> None:
    conn.execute(
        "UPDATE cdrs SET cost = %s, rate_id = %s, rate_prefix = %s, rate_per_minute = %s,"
        " connection_fee = %s, billed_seconds = %s, spans = %s,"
        " billing_note = concat_ws('; ', billing_note, %s::text) WHERE id = %s",
        (cost, rate_id, rate_prefix, rate_per_minute, connection_fee, billed_seconds,
         Jsonb(spans), note, cdr_id),
    )  # fmt: skip


def runs(conn: psycopg.Connection[Any], limit: int = 50) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, actor, range_from, range_to, plan_id, account_id, cdrs, total_delta,"
        " created_at FROM rerate_runs ORDER BY id DESC LIMIT %s",
        (limit,),
    ).fetchall()
