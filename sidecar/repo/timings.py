"""Timings of a rate plan (named weekday/daily windows and dates)."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

_COLUMNS = "id, plan_id, name, weekdays, start_second, end_second, dates, created_at"


def list_for_plan(conn: psycopg.Connection[Any], plan_id: int) -> list[dict[str, Any]]:
    return conn.execute(
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM rates r WHERE r.timing_id = t.id) AS rates"
        " FROM timings t WHERE plan_id = %s ORDER BY name",
        (plan_id,),
    ).fetchall()


def get(
    conn: psycopg.Connection[Any], plan_id: int, name: str, lock: bool = False
) -> dict[str, Any] | None:
    sql = (
        f"SELECT {_COLUMNS}, (SELECT count(*) FROM rates r WHERE r.timing_id = t.id) AS rates"
        " FROM timings t WHERE plan_id = %s AND name = %s"
    )
    return conn.execute(sql + (" FOR UPDATE OF t" if lock else ""), (plan_id, name)).fetchone()


def create(
    conn: psycopg.Connection[Any],
    plan_id: int,
    name: str,
    *,
    weekdays: list[int],
    start_second: int,
    end_second: int,
    dates: list[date],
) -> int | None:
    """The new timing's id, or None when the plan already has one of that name."""
    row = conn.execute(
        "INSERT INTO timings (plan_id, name, weekdays, start_second, end_second, dates)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (plan_id, name) DO NOTHING RETURNING id",
        (plan_id, name, weekdays, start_second, end_second, dates),
    ).fetchone()
    return None if row is None else int(row["id"])


def update(
    conn: psycopg.Connection[Any],
    timing_id: int,
    *,
    weekdays: list[int],
    start_second: int,
    end_second: int,
    dates: list[date],
) -> None:
    conn.execute(
        "UPDATE timings SET weekdays = %s, start_second = %s, end_second = %s, dates = %s"
        " WHERE id = %s",
        (weekdays, start_second, end_second, dates, timing_id),
    )


def delete(conn: psycopg.Connection[Any], timing_id: int) -> None:
    conn.execute("DELETE FROM timings WHERE id = %s", (timing_id,))


def id_by_name(conn: psycopg.Connection[Any], plan_id: int, name: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM timings WHERE plan_id = %s AND name = %s", (plan_id, name)
    ).fetchone()
    return None if row is None else int(row["id"])
