"""Rate plans and their rates, as the rating index needs them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import tuple_row


def plan_versions(conn: psycopg.Connection[Any]) -> dict[int, int]:
    rows = conn.execute("SELECT id, version FROM rate_plans").fetchall()
    return {int(r["id"]): int(r["version"]) for r in rows}


@contextmanager
def plan_snapshot(
    conn: psycopg.Connection[Any], plan_id: int
) -> Iterator[tuple[int, Iterator[tuple[Any, ...]]]]:
    """The plan's version and its rates, streamed from one snapshot.

    Rows come in the column order of ``RateIndex.from_rows``, grouped by prefix and in
    preference order within a prefix. Iterate them inside the ``with`` block.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        with conn.cursor(name=f"plan_{plan_id}", row_factory=tuple_row) as cur:
            cur.itersize = 20_000
            cur.execute(  # rates before rate_plans, as plan_snapshot_text (lock order)
                "SELECT id, prefix, name, rate_per_minute, connection_fee, initial_increment,"
                " increment, effective_start, effective_end, priority, enabled"
                " FROM rates WHERE plan_id = %s AND enabled"
                " ORDER BY prefix, priority DESC, effective_start DESC",
                (plan_id,),
            )
            row = conn.execute(
                "SELECT version FROM rate_plans WHERE id = %s", (plan_id,)
            ).fetchone()
            version = 0 if row is None else int(row["version"])
            yield version, iter(cur)


_TEXT_SNAPSHOT = (
    "SELECT concat_ws(' ', id, prefix, rate_per_minute, connection_fee, initial_increment,"
    " increment, (extract(epoch FROM effective_start) * 1000000)::bigint,"
    " coalesce(((extract(epoch FROM effective_end) * 1000000)::bigint)::text, ''), priority),"
    " name"
    " FROM rates WHERE plan_id = %s AND enabled"
    ' ORDER BY prefix COLLATE "C", priority DESC, effective_start DESC'
)


@contextmanager
def plan_snapshot_text(
    conn: psycopg.Connection[Any], plan_id: int
) -> Iterator[tuple[int, Iterator[tuple[str, str]]]]:
    """Like ``plan_snapshot``, in ``RateIndex.from_text_rows`` form (one packed text
    column and the name): typing 11 columns per row in the driver was most of the reload
    time of a million-rate plan; this way a tariff is typed once per distinct tariff."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SET LOCAL work_mem = '256MB'")  # sort in memory, not on disk
        with conn.cursor(name=f"plan_text_{plan_id}", row_factory=tuple_row) as cur:
            # rates is locked before rate_plans, the order `TRUNCATE ..., rates,
            # rate_plans` (the test fixture's) takes them: the other order can deadlock
            # against it; one REPEATABLE READ snapshot serves both reads either way
            cur.execute(_TEXT_SNAPSHOT, (plan_id,))
            row = conn.execute("SELECT version FROM rate_plans WHERE id = %s", (plan_id,))
            found = row.fetchone()
            version = 0 if found is None else int(found["version"])
            yield version, _batched(cur, 100_000)


def _batched(cur: psycopg.ServerCursor[Any], size: int) -> Iterator[Any]:
    # fetchmany in big batches: iterating the cursor row by row costs ~1 us per row
    while rows := cur.fetchmany(size):
        yield from rows


def plan_id_by_name(conn: psycopg.Connection[Any], name: str) -> int | None:
    row = conn.execute("SELECT id FROM rate_plans WHERE name = %s", (name,)).fetchone()
    return None if row is None else int(row["id"])


def ensure_plan(conn: psycopg.Connection[Any], name: str, currency: str = "USD") -> int:
    row = conn.execute(
        "INSERT INTO rate_plans (name, currency) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        (name, currency),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def add_rate(
    conn: psycopg.Connection[Any],
    plan_id: int,
    *,
    prefix: str,
    name: str,
    rate_per_minute: Any,
    connection_fee: Any = 0,
    initial_increment: int = 60,
    increment: int = 60,
    effective_start: Any = None,
    effective_end: Any = None,
    priority: int = 0,
    enabled: bool = True,
) -> int:
    row = conn.execute(
        "INSERT INTO rates (plan_id, prefix, name, rate_per_minute, connection_fee,"
        " initial_increment, increment, effective_start, effective_end, priority, enabled)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s) RETURNING id",
        (
            plan_id,
            prefix,
            name,
            rate_per_minute,
            connection_fee,
            initial_increment,
            increment,
            effective_start,
            effective_end,
            priority,
            enabled,
        ),
    ).fetchone()
    assert row is not None
    return int(row["id"])
