"""Fraud controls: destination rules, per-account limits, the shared settings, the alerts.

Enforcement is in SQL (sql/009_fraud_controls.sql: ``apolo_reserve``, ``apolo_extend``, the
ledger trigger); this module reads and writes what those functions read.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ACCOUNT_LIMITS = ("time_zone", "max_calls_per_minute", "daily_spend_limit", "spend_spike_factor")
SETTINGS = ("spike_factor", "spike_min_spend", "alert_window_seconds")


def rules(
    conn: psycopg.Connection[Any], *, plan_id: int | None = None, account_id: int | None = None
) -> list[dict[str, Any]]:
    """The allow and deny rules of one plan or one account, by prefix."""
    owner, value = ("plan_id", plan_id) if plan_id is not None else ("account_id", account_id)
    return conn.execute(
        f"SELECT verdict, prefix, note FROM destination_rules WHERE {owner} = %s"
        " ORDER BY verdict, prefix",
        (value,),
    ).fetchall()


def replace_rules(
    conn: psycopg.Connection[Any],
    verdict: str,
    entries: list[tuple[str, str]],
    *,
    plan_id: int | None = None,
    account_id: int | None = None,
) -> None:
    """Make ``entries`` ((prefix, note), ...) the owner's whole ``verdict`` list."""
    owner, value = ("plan_id", plan_id) if plan_id is not None else ("account_id", account_id)
    conn.execute(
        f"DELETE FROM destination_rules WHERE {owner} = %s AND verdict = %s", (value, verdict)
    )
    if entries:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO destination_rules ({owner}, verdict, prefix, note)"
                " VALUES (%s, %s, %s, %s)",
                [(value, verdict, prefix, note) for prefix, note in entries],
            )


def plans_with_rules(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every rate plan's name with its rules (verdict NULL for a plan without any)."""
    return conn.execute(
        "SELECT p.name, r.verdict, r.prefix, r.note FROM rate_plans p"
        " LEFT JOIN destination_rules r ON r.plan_id = p.id ORDER BY p.name, r.verdict, r.prefix"
    ).fetchall()


def lock_plan(conn: psycopg.Connection[Any], plan_id: int) -> None:
    """Two admins editing one plan's rules: the second waits for the first."""
    conn.execute("SELECT 1 FROM rate_plans WHERE id = %s FOR NO KEY UPDATE", (plan_id,))


def account_limits(conn: psycopg.Connection[Any], account_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT time_zone, max_calls_per_minute, daily_spend_limit, spend_spike_factor,"
        " apolo_spent_today(a) AS spent_today, a.reserved,"
        " date_trunc('day', now() AT TIME ZONE a.time_zone) AT TIME ZONE a.time_zone AS day_start"
        " FROM accounts a WHERE a.id = %s",
        (account_id,),
    ).fetchone()
    assert row is not None
    return dict(row)


def set_account_limits(
    conn: psycopg.Connection[Any], account_id: int, changes: dict[str, Any]
) -> None:
    names = [n for n in ACCOUNT_LIMITS if n in changes]
    if not names:
        return
    # recent_calls stays: it holds every call authorized in the last minute whatever the
    # limit was (at most the old limit could be), so a new limit counts them exactly
    assignments = ", ".join(f"{n} = %s" for n in names)
    conn.execute(
        f"UPDATE accounts SET {assignments}, updated_at = now() WHERE id = %s",
        [*(changes[n] for n in names), account_id],
    )


def is_time_zone(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(
        "SELECT apolo_is_time_zone(%s) AND EXISTS (SELECT 1 FROM pg_timezone_names"
        " WHERE name = %s) AS ok",
        (name, name),
    ).fetchone()
    return bool(row and row["ok"])


def settings(conn: psycopg.Connection[Any], *, lock: bool = False) -> dict[str, Any]:
    row = conn.execute(
        "SELECT spike_factor, spike_min_spend, alert_window_seconds, updated_at"
        " FROM fraud_settings" + (" FOR UPDATE" if lock else "")
    ).fetchone()
    assert row is not None
    return dict(row)


def update_settings(conn: psycopg.Connection[Any], changes: dict[str, Any]) -> None:
    names = [n for n in SETTINGS if n in changes]
    if names:
        assignments = ", ".join(f"{n} = %s" for n in names)
        conn.execute(
            f"UPDATE fraud_settings SET {assignments}, updated_at = now()",
            [changes[n] for n in names],
        )


def raise_event(
    conn: psycopg.Connection[Any],
    control: str,
    *,
    account_id: int | None,
    subject: str,
    detail: dict[str, Any],
    actor: str,
    target: str | None = None,
) -> int:
    """One occurrence of ``control``: audit row, and a new or counted alert (apolo_fraud_event)."""
    row = conn.execute(
        "SELECT apolo_fraud_event(%s, %s, %s, %s, %s, %s) AS id",
        (control, account_id, subject, Jsonb(detail), actor, target),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def recent_alerts(
    conn: psycopg.Connection[Any],
    *,
    account_id: int | None = None,
    control: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    where: list[str] = []
    params: list[object] = []
    if account_id is not None:
        where.append("f.account_id = %s")
        params.append(account_id)
    if control is not None:
        where.append("f.control = %s")
        params.append(control)
    sql = (
        "SELECT f.id, f.control, a.number AS account, f.detail, f.occurrences, f.first_at,"
        " f.last_at, o.delivered_at, o.attempts, o.last_error"
        " FROM fraud_alerts f LEFT JOIN accounts a ON a.id = f.account_id"
        " LEFT JOIN webhook_outbox o ON o.fraud_alert_id = f.id"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.id DESC LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()
