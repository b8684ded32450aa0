"""Rate plans and rates as the admin API manages them (CRUD and search)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from sidecar.rating import PlanMeta, Rate
from sidecar.repo import rates as rates_repo

RATE_COLUMNS = (
    "id", "plan_id", "prefix", "name", "rate_per_minute", "connection_fee", "initial_increment",
    "increment", "effective_start", "effective_end", "priority", "enabled", "timing_id",
    "minimum_charge", "free_seconds",
)  # fmt: skip
# every column, and the timing's name as ``timing``
_RATE_SELECT = (
    "SELECT " + ", ".join(f"r.{c}" for c in RATE_COLUMNS) + ", t.name AS timing"
    " FROM rates r LEFT JOIN timings t ON t.id = r.timing_id"
)
UPDATABLE = frozenset(RATE_COLUMNS) - {"id", "plan_id"}
_PLAN_SELECT = (
    "SELECT p.id, p.name, p.currency, p.timezone, pp.name AS parent, p.parent_id, p.version,"
    " p.created_at,"
    " (SELECT count(*) FROM rates r WHERE r.plan_id = p.id) AS rates,"
    " (SELECT count(*) FROM accounts a WHERE a.plan_id = p.id) AS accounts,"
    " (SELECT count(*) FROM rate_plans c WHERE c.parent_id = p.id) AS children"
    " FROM rate_plans p LEFT JOIN rate_plans pp ON pp.id = p.parent_id"
)


def list_plans(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(_PLAN_SELECT + " ORDER BY p.name").fetchall()


def get_plan(conn: psycopg.Connection[Any], name: str, lock: bool = False) -> dict[str, Any] | None:
    sql = _PLAN_SELECT + " WHERE p.name = %s" + (" FOR UPDATE OF p" if lock else "")
    return conn.execute(sql, (name,)).fetchone()


def create_plan(
    conn: psycopg.Connection[Any],
    name: str,
    currency: str,
    timezone: str = "UTC",
    parent_id: int | None = None,
) -> int | None:
    """The new plan's id, or None when the name is taken."""
    row = conn.execute(
        "INSERT INTO rate_plans (name, currency, timezone, parent_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (name) DO NOTHING RETURNING id",
        (name, currency, timezone, parent_id),
    ).fetchone()
    return None if row is None else int(row["id"])


PLAN_UPDATABLE = frozenset({"timezone", "parent_id"})


def update_plan(conn: psycopg.Connection[Any], plan_id: int, values: dict[str, Any]) -> None:
    """Set ``timezone`` / ``parent_id`` (a parent that would make a cycle raises
    ``psycopg.errors.CheckViolation``, constraint ``rate_plans_parent_cycle``)."""
    assert values and set(values) <= PLAN_UPDATABLE
    assignments = ", ".join(f"{column} = %s" for column in values)
    conn.execute(f"UPDATE rate_plans SET {assignments} WHERE id = %s", [*values.values(), plan_id])


def delete_plan(conn: psycopg.Connection[Any], plan_id: int) -> None:
    conn.execute("DELETE FROM rate_plans WHERE id = %s", (plan_id,))


def search_rates(
    conn: psycopg.Connection[Any],
    plan_id: int,
    *,
    prefix: str | None,
    matching: str | None,
    name: str | None,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Rates of the plan by id: ``prefix`` = prefixes starting with those digits,
    ``matching`` = prefixes a number starts with (the candidates of a lookup),
    ``name`` = case-insensitive substring."""
    sql = _RATE_SELECT + " WHERE r.plan_id = %s"
    params: list[object] = [plan_id]
    if prefix is not None:
        sql += " AND r.prefix LIKE %s"
        params.append(prefix + "%")
    if matching is not None:
        sql += " AND r.prefix = ANY(%s)"
        params.append([matching[:n] for n in range(1, len(matching) + 1)])
    if name is not None:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql += " AND lower(r.name) LIKE lower(%s)"
        params.append(f"%{escaped}%")
    if after_id is not None:
        sql += " AND r.id > %s"
        params.append(after_id)
    sql += " ORDER BY r.id LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


def get_rate(
    conn: psycopg.Connection[Any], rate_id: int, lock: bool = False
) -> dict[str, Any] | None:
    sql = _RATE_SELECT + " WHERE r.id = %s" + (" FOR UPDATE OF r" if lock else "")
    return conn.execute(sql, (rate_id,)).fetchone()


def insert_rate(conn: psycopg.Connection[Any], plan_id: int, values: dict[str, Any]) -> int:
    assert set(values) <= UPDATABLE
    columns = ["plan_id", *values]
    row = conn.execute(
        f"INSERT INTO rates ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        " RETURNING id",
        [plan_id, *values.values()],
    ).fetchone()
    assert row is not None
    return int(row["id"])


def update_rate(conn: psycopg.Connection[Any], rate_id: int, values: dict[str, Any]) -> None:
    assert values and set(values) <= UPDATABLE
    assignments = ", ".join(f"{column} = %s" for column in values)
    conn.execute(f"UPDATE rates SET {assignments} WHERE id = %s", [*values.values(), rate_id])


def delete_rate(conn: psycopg.Connection[Any], rate_id: int) -> None:
    conn.execute("DELETE FROM rates WHERE id = %s", (rate_id,))


def plan_rates(conn: psycopg.Connection[Any], plan_id: int) -> Iterator[Rate]:
    """Every rate of the plan (enabled or not) as rating values, in prefix byte order,
    streamed by a server-side cursor (needs an open transaction)."""
    timings = PlanMeta.from_json(rates_repo.plan_meta(conn, plan_id)).timing_by_id()
    with conn.cursor(name="apolo_plan_rates", row_factory=tuple_row) as cur:
        cur.itersize = 10_000
        cur.execute(
            "SELECT id, prefix, name, rate_per_minute, connection_fee, initial_increment,"
            " increment, effective_start, effective_end, priority, enabled, timing_id,"
            " minimum_charge, free_seconds"
            ' FROM rates WHERE plan_id = %s ORDER BY prefix COLLATE "C", id',
            (plan_id,),
        )
        for record in cur:
            timing_id = record[11]
            timing = None if timing_id is None else timings[timing_id]
            yield Rate(*record[:11])._replace(
                timing=timing, minimum_charge=record[12], free_seconds=record[13]
            )
