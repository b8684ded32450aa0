"""Balance reservations held by calls in progress."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg


def for_call(
    conn: psycopg.Connection[Any], call_uuid: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """The call's reservation; with ``lock``, locked until the transaction ends.

    Lock order everywhere is account first, then its reservations (as apolo_reserve does).
    """
    sql = (
        "SELECT id, account_id, call_uuid, amount, rate_id, caller, callee, status, created_at"
        " FROM reservations WHERE call_uuid = %s"
    )
    return conn.execute(sql + (" FOR UPDATE" if lock else ""), (call_uuid,)).fetchone()


def any_for_calls(conn: psycopg.Connection[Any], call_uuids: list[str]) -> str | None:
    """The uuid of one of ``call_uuids`` that holds a reservation, if any."""
    if not call_uuids:
        return None
    row = conn.execute(
        "SELECT call_uuid FROM reservations WHERE call_uuid = ANY(%s) LIMIT 1", (call_uuids,)
    ).fetchone()
    return None if row is None else str(row["call_uuid"])


def hold_for(
    conn: psycopg.Connection[Any], reservation_id: int, talk_seconds: int, grace: timedelta
) -> None:
    """Keep an open reservation at least until ``talk_seconds`` of talk plus ``grace``
    after it was made (it only ever moves later)."""
    conn.execute(
        "UPDATE reservations SET expires_at = greatest(expires_at,"
        " created_at + %s + make_interval(secs => %s)) WHERE id = %s AND status = 'open'",
        (grace, talk_seconds, reservation_id),
    )


def close(conn: psycopg.Connection[Any], reservation_id: int, status: str, reason: str) -> None:
    conn.execute(
        "UPDATE reservations SET status = %s, closed_at = now(), close_reason = %s WHERE id = %s",
        (status, reason, reservation_id),
    )


def expire_overdue(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Mark every overdue open reservation expired and give its money back."""
    accounts = conn.execute(
        "SELECT DISTINCT account_id FROM reservations"
        " WHERE status = 'open' AND expires_at < now() ORDER BY account_id"
    ).fetchall()
    expired: list[dict[str, Any]] = []
    for acc in accounts:
        account_id = int(acc["account_id"])
        conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
        rows = conn.execute(
            "UPDATE reservations SET status = 'expired', closed_at = now(),"
            " close_reason = 'expired before its CDR arrived'"
            " WHERE account_id = %s AND status = 'open' AND expires_at < now()"
            " RETURNING id, account_id, call_uuid, amount",
            (account_id,),
        ).fetchall()
        if rows:
            conn.execute(
                "UPDATE accounts SET reserved = reserved - %s,"
                " active_calls = greatest(active_calls - %s, 0) WHERE id = %s",
                (sum(r["amount"] for r in rows), len(rows), account_id),
            )
        expired.extend(rows)
    return expired


def open_for_account(conn: psycopg.Connection[Any], account_id: int) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, call_uuid, amount, caller, callee, created_at, expires_at FROM reservations"
        " WHERE account_id = %s AND status = 'open' ORDER BY id",
        (account_id,),
    ).fetchall()


def open_calls(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every open reservation as a live call (to rebuild the live table Redis lost)."""
    return conn.execute(
        "SELECT r.call_uuid AS uuid, a.number AS account, r.caller, r.callee,"
        " r.id AS reservation_id, r.amount AS reserved, r.max_duration, r.node,"
        " extract(epoch FROM r.created_at)::numeric(20,3) AS authorized_at,"
        " extract(epoch FROM r.answered_at)::numeric(20,3) AS answered_at"
        " FROM reservations r JOIN accounts a ON a.id = r.account_id"
        " WHERE r.status = 'open' ORDER BY r.id"
    ).fetchall()
