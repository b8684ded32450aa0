"""SQL of mid-call control: caps, reservation extension, orphan release, the control audit."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.rating import Rate


def call_cap(conn: psycopg.Connection[Any], account_id: int) -> Decimal | None:
    """The tighter of the account's and its plan's ``max_call_cost`` (None: no cap)."""
    row = conn.execute(
        "SELECT a.max_call_cost AS account_cap, p.max_call_cost AS plan_cap"
        " FROM accounts a JOIN rate_plans p ON p.id = a.plan_id WHERE a.id = %s",
        (account_id,),
    ).fetchone()
    if row is None:
        return None
    caps = [Decimal(v) for v in (row["account_cap"], row["plan_cap"]) if v is not None]
    return min(caps) if caps else None


def account_call_cap(conn: psycopg.Connection[Any], account_id: int) -> Decimal | None:
    """The account's own ``max_call_cost`` (its plan's is not included)."""
    row = conn.execute("SELECT max_call_cost FROM accounts WHERE id = %s", (account_id,)).fetchone()
    return None if row is None or row["max_call_cost"] is None else Decimal(row["max_call_cost"])


def set_account_call_cap(
    conn: psycopg.Connection[Any], account_id: int, cap: Decimal | None
) -> None:
    conn.execute(
        "UPDATE accounts SET max_call_cost = %s, updated_at = now() WHERE id = %s",
        (cap, account_id),
    )


def set_max_duration(conn: psycopg.Connection[Any], reservation_id: int, seconds: int) -> None:
    conn.execute(
        "UPDATE reservations SET max_duration = %s WHERE id = %s", (seconds, reservation_id)
    )


def reservation_for_control(conn: psycopg.Connection[Any], call_uuid: str) -> dict[str, Any] | None:
    """The call's reservation with what the worker needs: account, rate, paid time, cap."""
    return conn.execute(
        "SELECT r.id, r.account_id, a.number AS account, a.plan_id, r.call_uuid, r.amount,"
        " r.rate_id, r.callee, r.max_duration, r.extensions, r.status, r.node, r.answered_at,"
        " r.created_at"
        " FROM reservations r JOIN accounts a ON a.id = r.account_id WHERE r.call_uuid = %s",
        (call_uuid,),
    ).fetchone()


def open_reserved(conn: psycopg.Connection[Any], call_uuids: list[str]) -> list[str]:
    """Which of these call uuids hold an open reservation."""
    if not call_uuids:
        return []
    rows = conn.execute(
        "SELECT call_uuid FROM reservations WHERE status = 'open' AND call_uuid = ANY(%s)",
        (call_uuids,),
    ).fetchall()
    return [str(r["call_uuid"]) for r in rows]


def mark_answered(
    conn: psycopg.Connection[Any], reservation_id: int, node: str, answered_at: datetime
) -> None:
    conn.execute(
        "UPDATE reservations SET node = %s, answered_at = coalesce(answered_at, %s) WHERE id = %s",
        (node, answered_at, reservation_id),
    )


def plan_of_account(conn: psycopg.Connection[Any], account_id: int) -> int | None:
    row = conn.execute("SELECT plan_id FROM accounts WHERE id = %s", (account_id,)).fetchone()
    return None if row is None else int(row["plan_id"])


def rate_by_id(conn: psycopg.Connection[Any], rate_id: int) -> Rate | None:
    """The rate alone (its timing, if any, is not loaded: it prices from answer on)."""
    row = conn.execute(
        "SELECT id, prefix, name, rate_per_minute, connection_fee, initial_increment, increment,"
        " effective_start, effective_end, priority, enabled, minimum_charge, free_seconds"
        " FROM rates WHERE id = %s",
        (rate_id,),
    ).fetchone()
    if row is None:
        return None
    return Rate(
        id=int(row["id"]),
        prefix=row["prefix"],
        name=row["name"],
        rate_per_minute=Decimal(row["rate_per_minute"]),
        connection_fee=Decimal(row["connection_fee"]),
        initial_increment=int(row["initial_increment"]),
        increment=int(row["increment"]),
        effective_start=row["effective_start"],
        effective_end=row["effective_end"],
        priority=int(row["priority"]),
        enabled=bool(row["enabled"]),
        minimum_charge=Decimal(row["minimum_charge"]),
        free_seconds=int(row["free_seconds"]),
    )


def extend(
    conn: psycopg.Connection[Any],
    call_uuid: str,
    *,
    want_total: Decimal,
    min_total: Decimal,
    seconds: int,
    grace: timedelta,
) -> dict[str, Any]:
    """One round trip: the atomic check-and-grow of ``apolo_extend`` (sql/003_control.sql)."""
    row = conn.execute(
        "SELECT * FROM apolo_extend(%s, %s, %s, %s, %s)",
        (call_uuid, want_total, min_total, seconds, grace),
    ).fetchone()
    assert row is not None
    return dict(row)


def open_older_than(conn: psycopg.Connection[Any], age: timedelta) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, call_uuid, account_id, amount, node FROM reservations"
        " WHERE status = 'open' AND created_at < now() - %s ORDER BY id",
        (age,),
    ).fetchall()


def release_orphan(
    conn: psycopg.Connection[Any], reservation_id: int, reason: str
) -> dict[str, Any] | None:
    """Release one open reservation (account locked first) and audit it; None if not open."""
    found = conn.execute(
        "SELECT account_id FROM reservations WHERE id = %s", (reservation_id,)
    ).fetchone()
    if found is None:
        return None
    conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (found["account_id"],))
    row = conn.execute(
        "UPDATE reservations SET status = 'released', closed_at = now(), close_reason = %s"
        " WHERE id = %s AND status = 'open' RETURNING id, account_id, call_uuid, amount, node",
        (reason, reservation_id),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE accounts SET reserved = reserved - %s,"
        " active_calls = greatest(active_calls - 1, 0), updated_at = now() WHERE id = %s",
        (row["amount"], row["account_id"]),
    )
    record(
        conn,
        "orphan_released",
        row["call_uuid"],
        node=row["node"],
        reservation_id=int(row["id"]),
        account_id=int(row["account_id"]),
        amount=Decimal(row["amount"]),
        reason=reason,
    )
    return dict(row)


def record(
    conn: psycopg.Connection[Any],
    action: str,
    call_uuid: str,
    *,
    node: str | None,
    reservation_id: int | None,
    account_id: int | None,
    amount: Decimal | None,
    reason: str,
) -> None:
    conn.execute(
        "INSERT INTO control_audit (action, call_uuid, node, reservation_id, account_id, amount,"
        " reason) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (action, call_uuid, node, reservation_id, account_id, amount, reason),
    )


def audit_of(conn: psycopg.Connection[Any], call_uuid: str) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT action, call_uuid, node, reservation_id, account_id, amount, reason, created_at"
        " FROM control_audit WHERE call_uuid = %s ORDER BY id",
        (call_uuid,),
    ).fetchall()
