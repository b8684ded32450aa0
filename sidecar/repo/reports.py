"""Traffic aggregates over CDRs for the reports.

A call counts once: legs stored as ``not_billed`` (B legs, legs of a reserved call) are
left out. Times are CDR ``start_at`` in UTC; money sums are NUMERIC, returned as Decimal.
The grouping expression is chosen from :data:`GROUPS` only, never from the request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

GROUPS = {
    "hour": ("date_trunc('hour', c.start_at AT TIME ZONE 'UTC')", "''"),
    "day": ("date_trunc('day', c.start_at AT TIME ZONE 'UTC')", "''"),
    "account": ("a.number", "min(a.name)"),
    "destination": ("coalesce(c.rate_prefix, '')", "coalesce(min(r.name), '')"),
}
_SELECT = """
SELECT {key} AS key, {label} AS label,
       count(*) AS calls,
       count(*) FILTER (WHERE c.answer_at IS NOT NULL AND c.billsec > 0) AS answered,
       coalesce(sum(c.billsec) FILTER (WHERE c.answer_at IS NOT NULL AND c.billsec > 0), 0)
           AS billsec,
       coalesce(sum(c.cost) FILTER (WHERE c.billing_status = 'charged'), 0) AS revenue
  FROM cdrs c
  LEFT JOIN accounts a ON a.id = c.account_id
  LEFT JOIN rates r ON r.id = c.rate_id
 WHERE c.billing_status <> 'not_billed' AND c.start_at >= %s AND c.start_at < %s
"""


def traffic(
    conn: psycopg.Connection[Any],
    group: str,
    start: datetime,
    end: datetime,
    *,
    account_id: int | None = None,
    order_by_revenue: bool = False,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """One row per group key: calls, answered, billsec (answered), revenue."""
    key, label = GROUPS[group]
    sql = _SELECT.format(key=key, label=label)
    params: list[object] = [start, end]
    if account_id is not None:
        sql += " AND c.account_id = %s"
        params.append(account_id)
    sql += f" GROUP BY {key}"
    sql += " ORDER BY revenue DESC, billsec DESC, key" if order_by_revenue else " ORDER BY key"
    sql += " LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()
