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


def number_rules_version(conn: psycopg.Connection[Any]) -> int:
    """Moves whenever a source's (switch's, cluster's) normalization rules change."""
    row = conn.execute("SELECT version FROM number_rules_version").fetchone()
    return 0 if row is None else int(row["version"])


def source_rules(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every source's normalization rules, in the order they are tried."""
    return conn.execute(
        "SELECT source, source_name, direction, strip_prefix, add_prefix, min_length,"
        " max_length FROM number_rules WHERE source IS NOT NULL"
        " ORDER BY source, source_name, direction, position, id"
    ).fetchall()


# the columns of ``RateIndex.from_rows``, in its order
RATE_ROW_COLUMNS = (
    "id, prefix, name, rate_per_minute, connection_fee, initial_increment, increment,"
    " effective_start, effective_end, priority, enabled, timing_id, minimum_charge,"
    " free_seconds"
)


@contextmanager
def plan_snapshot(
    conn: psycopg.Connection[Any], plan_id: int
) -> Iterator[tuple[int, dict[str, Any], Iterator[tuple[Any, ...]]]]:
    """The plan's version, its meta (``plan_meta``) and its rates, streamed from one
    snapshot.

    Rows come in the column order of ``RateIndex.from_rows``, grouped by prefix and in
    preference order within a prefix. Iterate them inside the ``with`` block.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SELECT FROM rates LIMIT 0")  # rates before rate_plans (lock order)
        version, meta = plan_version(conn, plan_id), plan_meta(conn, plan_id)
        with conn.cursor(name=f"plan_{plan_id}", row_factory=tuple_row) as cur:
            cur.itersize = 20_000
            cur.execute(
                f"SELECT {RATE_ROW_COLUMNS} FROM rates WHERE plan_id = %s AND enabled"
                " ORDER BY prefix, priority DESC, effective_start DESC, id",
                (plan_id,),
            )
            yield version, meta, iter(cur)


def plan_has_rates(conn: psycopg.Connection[Any], plan_id: int, count: int) -> bool:
    """Whether the plan holds at least ``count`` rates (reads no more than that many)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM (SELECT 1 FROM rates WHERE plan_id = %s LIMIT %s) r",
        (plan_id, count),
    ).fetchone()
    return row is not None and int(row["n"]) >= count


def plan_version(conn: psycopg.Connection[Any], plan_id: int) -> int:
    """The plan's version; 0 when there is no such plan."""
    row = conn.execute("SELECT version FROM rate_plans WHERE id = %s", (plan_id,)).fetchone()
    return 0 if row is None else int(row["version"])


def plan_meta(conn: psycopg.Connection[Any], plan_id: int) -> dict[str, Any]:
    """The plan's time zone, parent, timings and normalization rules, in the JSON form of
    ``PlanMeta.from_json`` (``{}`` when there is no such plan)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        plan = cur.execute(
            "SELECT timezone, parent_id FROM rate_plans WHERE id = %s", (plan_id,)
        ).fetchone()
        if plan is None:
            return {}
        timings = cur.execute(
            "SELECT id, name, weekdays, start_second, end_second, dates FROM timings"
            " WHERE plan_id = %s ORDER BY id",
            (plan_id,),
        ).fetchall()
        rules = cur.execute(
            "SELECT direction, strip_prefix, add_prefix, min_length, max_length"
            " FROM number_rules WHERE plan_id = %s ORDER BY direction, position, id",
            (plan_id,),
        ).fetchall()
    return {
        "plan_id": plan_id,
        "timezone": plan[0],
        "parent_id": plan[1],
        "timings": [_timing(t) for t in timings],
        "callee_rules": [_rule(r) for r in rules if r[0] == "callee"],
        "caller_rules": [_rule(r) for r in rules if r[0] == "caller"],
    }


def _timing(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "name": row[1],
        "weekdays": list(row[2]),
        "start": row[3],
        "end": row[4],
        "dates": [d.isoformat() for d in row[5]],
    }


def _rule(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"strip": row[1], "add": row[2], "min_length": row[3], "max_length": row[4]}


def plan_chain(conn: psycopg.Connection[Any], plan_id: int) -> list[int]:
    """The plan and its ancestors, nearest first (cycles are refused by a trigger; a
    repeated id ends the walk anyway)."""
    rows = conn.execute(
        "WITH RECURSIVE up(id, parent_id, depth) AS ("
        " SELECT id, parent_id, 0 FROM rate_plans WHERE id = %s"
        " UNION ALL SELECT p.id, p.parent_id, up.depth + 1 FROM rate_plans p"
        " JOIN up ON p.id = up.parent_id WHERE up.depth < 32)"
        " SELECT id FROM up ORDER BY depth",
        (plan_id,),
    ).fetchall()
    chain: list[int] = []
    for row in rows:
        if int(row["id"]) in chain:
            break
        chain.append(int(row["id"]))
    return chain


def candidate_rows(
    conn: psycopg.Connection[Any], plan_id: int, number: str
) -> list[tuple[Any, ...]]:
    """The plan's enabled rates whose prefix starts ``number``, in ``RateIndex.from_rows``
    order: what a lookup of that one number can need (a few rows, by the prefix index)."""
    prefixes = [number[:n] for n in range(1, min(len(number), 32) + 1)]
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(
            f"SELECT {RATE_ROW_COLUMNS} FROM rates WHERE plan_id = %s AND enabled"
            " AND prefix = ANY(%s) ORDER BY prefix, priority DESC, effective_start DESC, id",
            (plan_id, prefixes),
        ).fetchall()


def database_identity(conn: psycopg.Connection[Any]) -> tuple[str, int]:
    """``(cluster, database oid)``, a name for this database that no other database has,
    nor this one after a restore to another timeline: the cluster is its system
    identifier and timeline where the control functions are granted, else the server's
    start time (also new after a restore)."""
    oid = "(SELECT oid FROM pg_database WHERE datname = current_database()) AS oid"
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT s.system_identifier || '.' || c.timeline_id AS cluster, " + oid
                + " FROM pg_control_system() s, pg_control_checkpoint() c"
            ).fetchone()  # fmt: skip
    except psycopg.errors.InsufficientPrivilege:
        row = conn.execute(
            "SELECT 'started' || (extract(epoch FROM pg_postmaster_start_time()) * 1000000)"
            "::bigint AS cluster, " + oid
        ).fetchone()
    assert row is not None
    return str(row["cluster"]), int(row["oid"])


def database_oids(conn: psycopg.Connection[Any]) -> set[int]:
    return {int(r["oid"]) for r in conn.execute("SELECT oid FROM pg_database").fetchall()}


# one line per rate: id, prefix, the tariff as ``RateIndex.from_text`` reads it, name
# (backslash, newline and tab escaped as COPY text format does)
_TARIFF = (
    "concat_ws(' ', rate_per_minute, connection_fee, initial_increment, increment,"
    " (extract(epoch FROM effective_start) * 1000000)::bigint,"
    " coalesce(((extract(epoch FROM effective_end) * 1000000)::bigint)::text, ''), priority,"
    " coalesce(timing_id::text, ''), minimum_charge, free_seconds)"
)
_LINE = (
    "id || E'\\t' || prefix || E'\\t' || " + _TARIFF + ""
    " || E'\\t' || replace(replace(replace(name, E'\\\\', E'\\\\\\\\'), E'\\n', E'\\\\n'),"
    " E'\\t', E'\\\\t') || E'\\n'"
)
_ORDER = ' ORDER BY prefix COLLATE "C", priority DESC, effective_start DESC, id'
_SNAPSHOT = (
    "SELECT convert_to(string_agg(line, ''), 'UTF8') AS text FROM (SELECT " + _LINE + " AS line"
    " FROM rates WHERE plan_id = %s AND enabled" + _ORDER + ") ordered"
)
_COPY_SNAPSHOT = (
    "COPY (SELECT id, prefix, "
    + _TARIFF
    + ", name FROM rates WHERE plan_id = %s AND enabled"
    + _ORDER
    + ") TO STDOUT"
)


@contextmanager
def plan_snapshot_text(
    conn: psycopg.Connection[Any], plan_id: int, *, via_copy: bool = False
) -> Iterator[tuple[int, dict[str, Any], Iterator[bytes]]]:
    """The plan's version, its meta (``plan_meta``) and its rates as
    ``RateIndex.from_text`` takes them, from one snapshot: blocks of whole lines, grouped
    by prefix (byte order) and in preference order within a prefix. Consume them inside
    the ``with`` block.

    The server joins the lines into one value (the aggregate keeps the order of its
    sorted input: ``from_text`` checks it), sent as raw bytes: a cursor or COPY would
    cost a Python round per row, as long again as the server's sort and formatting. A
    plan over the 1 GB a value can hold (some 14 million rates) comes by COPY instead
    (``via_copy``: always)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SET LOCAL work_mem = '256MB'")  # sort in memory, not on disk
        conn.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        # rates is locked before rate_plans, the order `TRUNCATE ..., rates, rate_plans`
        # (the test fixture's) takes them: the other order can deadlock against it; the
        # snapshot taken here serves both reads either way
        conn.execute("SELECT FROM rates LIMIT 0")
        version, meta = plan_version(conn, plan_id), plan_meta(conn, plan_id)
        row = None
        try:
            if not via_copy:
                with conn.transaction():
                    row = conn.execute(_SNAPSHOT, (plan_id,), binary=True).fetchone()
        except (psycopg.errors.ProgramLimitExceeded, psycopg.errors.OutOfMemory):
            pass
        if row is not None:
            yield version, meta, iter([row["text"]] if row["text"] else [])
            return
        conn.execute("SET LOCAL client_encoding = 'UTF8'")
        with conn.cursor().copy(_COPY_SNAPSHOT, (plan_id,)) as copy:
            yield version, meta, _blocks(copy, 1 << 22)


def _blocks(copy: psycopg.Copy, size: int) -> Iterator[bytes]:
    # COPY TO sends a message per row: joined into big blocks for the builder
    block = bytearray()
    for row in copy:
        block += row
        if len(block) >= size:
            yield bytes(block)
            block.clear()
    if block:
        yield bytes(block)


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
    timing_id: int | None = None,
    minimum_charge: Any = 0,
    free_seconds: int = 0,
) -> int:
    row = conn.execute(
        "INSERT INTO rates (plan_id, prefix, name, rate_per_minute, connection_fee,"
        " initial_increment, increment, effective_start, effective_end, priority, enabled,"
        " timing_id, minimum_charge, free_seconds)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s, %s, %s, %s)"
        " RETURNING id",
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
            timing_id,
            minimum_charge,
            free_seconds,
        ),
    ).fetchone()
    assert row is not None
    return int(row["id"])
