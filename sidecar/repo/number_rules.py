"""Number normalization rules of rate plans and of sources (switches, CUCM clusters)."""

from __future__ import annotations

from typing import Any

import psycopg

_COLUMNS = (
    "n.id, n.plan_id, p.name AS plan, n.source, n.source_name, n.direction, n.position,"
    " n.strip_prefix, n.add_prefix, n.min_length, n.max_length, n.created_at"
)
_FROM = " FROM number_rules n LEFT JOIN rate_plans p ON p.id = n.plan_id"


def search(
    conn: psycopg.Connection[Any],
    *,
    plan_id: int | None = None,
    source: str | None = None,
    source_name: str | None = None,
    direction: str | None = None,
) -> list[dict[str, Any]]:
    """Rules in the order they are tried (owner, direction, position)."""
    clauses, params = [], []
    for column, value in (
        ("n.plan_id", plan_id),
        ("n.source", source),
        ("n.source_name", source_name),
        ("n.direction", direction),
    ):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    return conn.execute(
        f"SELECT {_COLUMNS}{_FROM}{where}"
        " ORDER BY n.source NULLS FIRST, n.source_name, p.name, n.direction, n.position, n.id",
        params,
    ).fetchall()


def get(conn: psycopg.Connection[Any], rule_id: int, lock: bool = False) -> dict[str, Any] | None:
    sql = f"SELECT {_COLUMNS}{_FROM} WHERE n.id = %s" + (" FOR UPDATE OF n" if lock else "")
    return conn.execute(sql, (rule_id,)).fetchone()


def lock_owner(
    conn: psycopg.Connection[Any], plan_id: int | None, source: str | None, name: str | None
) -> None:
    """Serialize changes of one owner's rules (positions are computed from its rules)."""
    key = f"plan:{plan_id}" if plan_id is not None else f"{source}:{name}"
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('apolo_number_rules'), hashtext(%s))", (key,)
    )


def next_position(
    conn: psycopg.Connection[Any],
    plan_id: int | None,
    source: str | None,
    name: str | None,
    direction: str,
) -> int:
    row = conn.execute(
        "SELECT coalesce(max(position) + 1, 0) AS next FROM number_rules"
        " WHERE plan_id IS NOT DISTINCT FROM %s AND source IS NOT DISTINCT FROM %s"
        " AND source_name IS NOT DISTINCT FROM %s AND direction = %s",
        (plan_id, source, name, direction),
    ).fetchone()
    assert row is not None
    return int(row["next"])


def make_room(
    conn: psycopg.Connection[Any],
    plan_id: int | None,
    source: str | None,
    name: str | None,
    direction: str,
    position: int,
) -> None:
    """Move the owner's rules at ``position`` and after one place down (to insert there):
    out of the way first, so the unique positions never collide half-way."""
    owner = (
        " WHERE plan_id IS NOT DISTINCT FROM %(plan)s AND source IS NOT DISTINCT FROM %(src)s"
        " AND source_name IS NOT DISTINCT FROM %(name)s AND direction = %(dir)s"
    )
    params = {"plan": plan_id, "src": source, "name": name, "dir": direction, "pos": position}
    conn.execute(
        "UPDATE number_rules SET position = position + 1000000"
        + owner
        + " AND position >= %(pos)s",
        params,
    )
    conn.execute(
        "UPDATE number_rules SET position = position - 999999" + owner
        + " AND position >= 1000000",
        params,
    )  # fmt: skip


def insert(conn: psycopg.Connection[Any], values: dict[str, Any]) -> int:
    columns = list(values)
    row = conn.execute(
        f"INSERT INTO number_rules ({', '.join(columns)})"
        f" VALUES ({', '.join(['%s'] * len(columns))}) RETURNING id",
        list(values.values()),
    ).fetchone()
    assert row is not None
    return int(row["id"])


UPDATABLE = frozenset({"strip_prefix", "add_prefix", "min_length", "max_length"})


def update(conn: psycopg.Connection[Any], rule_id: int, values: dict[str, Any]) -> None:
    assert values and set(values) <= UPDATABLE
    assignments = ", ".join(f"{column} = %s" for column in values)
    conn.execute(
        f"UPDATE number_rules SET {assignments} WHERE id = %s", [*values.values(), rule_id]
    )


def delete(conn: psycopg.Connection[Any], rule_id: int) -> None:
    conn.execute("DELETE FROM number_rules WHERE id = %s", (rule_id,))
