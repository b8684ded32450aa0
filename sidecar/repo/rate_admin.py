"""Rate plans and rates as the admin API manages them (CRUD and search)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from sidecar.rating import Rate

RATE_COLUMNS = (
    "id", "plan_id", "prefix", "name", "rate_per_minute", "connection_fee", "initial_increment",
    "increment", "effective_start", "effective_end", "priority", "enabled",
)  # fmt: skip
_RATE_SELECT = "SELECT " + ", ".join(RATE_COLUMNS) + " FROM rates"
UPDATABLE = frozenset(RATE_COLUMNS) - {"id", "plan_id"}


def list_plans(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT p.id, p.name, p.currency, p.version, p.created_at,"
        " (SELECT count(*) FROM rates r WHERE r.plan_id = p.id) AS rates,"
        " (SELECT count(*) FROM accounts a WHERE a.plan_id = p.id) AS accounts"
        " FROM rate_plans p ORDER BY p.name"
    ).fetchall()


def get_plan(conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT p.id, p.name, p.currency, p.version, p.created_at,"
        " (SELECT count(*) FROM rates r WHERE r.plan_id = p.id) AS rates,"
        " (SELECT count(*) FROM accounts a WHERE a.plan_id = p.id) AS accounts"
        " FROM rate_plans p WHERE p.name = %s",
        (name,),
    ).fetchone()


def create_plan(conn: psycopg.Connection[Any], name: str, currency: str) -> int | None:
    """The new plan's id, or None when the name is taken."""
    row = conn.execute(
        "INSERT INTO rate_plans (name, currency) VALUES (%s, %s)"
        " ON CONFLICT (name) DO NOTHING RETURNING id",
        (name, currency),
    ).fetchone()
    return None if row is None else int(row["id"])


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
    sql = _RATE_SELECT + " WHERE plan_id = %s"
    params: list[object] = [plan_id]
    if prefix is not None:
        sql += " AND prefix LIKE %s"
        params.append(prefix + "%")
    if matching is not None:
        sql += " AND prefix = ANY(%s)"
        params.append([matching[:n] for n in range(1, len(matching) + 1)])
    if name is not None:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql += " AND lower(name) LIKE lower(%s)"
        params.append(f"%{escaped}%")
    if after_id is not None:
        sql += " AND id > %s"
        params.append(after_id)
    sql += " ORDER BY id LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


def get_rate(
    conn: psycopg.Connection[Any], rate_id: int, lock: bool = False
) -> dict[str, Any] | None:
    sql = _RATE_SELECT + " WHERE id = %s" + (" FOR UPDATE" if lock else "")
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
    with conn.cursor(name="apolo_plan_rates", row_factory=tuple_row) as cur:
        cur.itersize = 10_000
        cur.execute(
            "SELECT id, prefix, name, rate_per_minute, connection_fee, initial_increment,"
            " increment, effective_start, effective_end, priority, enabled"
            ' FROM rates WHERE plan_id = %s ORDER BY prefix COLLATE "C", id',
            (plan_id,),
        )
        for record in cur:
            yield Rate(*record)
