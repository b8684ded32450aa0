"""Low-balance alerts and the webhook outbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

NOTIFY_CHANNEL = "apolo_webhooks"


def account_for_alert(conn: psycopg.Connection[Any], account_id: int) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, number, name, low_balance_threshold FROM accounts WHERE id = %s",
        (account_id,),
    ).fetchone()


def insert_alert(
    conn: psycopg.Connection[Any],
    account_id: int,
    threshold: Decimal,
    before: Decimal,
    after: Decimal,
) -> dict[str, Any]:
    row = conn.execute(
        "INSERT INTO low_balance_alerts (account_id, threshold, balance_before, balance_after)"
        " VALUES (%s, %s, %s, %s) RETURNING id, created_at",
        (account_id, threshold, before, after),
    ).fetchone()
    assert row is not None
    return dict(row)


def enqueue(
    conn: psycopg.Connection[Any], alert_id: int | None, event: str, payload: dict[str, Any]
) -> int:
    """Queue a webhook; the NOTIFY reaches the delivery loop only when the caller commits."""
    row = conn.execute(
        "INSERT INTO webhook_outbox (alert_id, event, payload) VALUES (%s, %s, %s) RETURNING id",
        (alert_id, event, Jsonb(payload)),
    ).fetchone()
    assert row is not None
    conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    return int(row["id"])


def claim_due(conn: psycopg.Connection[Any], max_attempts: int, batch: int) -> list[dict[str, Any]]:
    """Due, undelivered webhooks, row-locked (SKIP LOCKED: parallel loops never share one)."""
    return conn.execute(
        "SELECT id, event, payload, attempts FROM webhook_outbox"
        " WHERE delivered_at IS NULL AND attempts < %s AND next_attempt_at <= now()"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (max_attempts, batch),
    ).fetchall()


def mark_delivered(conn: psycopg.Connection[Any], outbox_id: int) -> None:
    conn.execute(
        "UPDATE webhook_outbox SET delivered_at = now(), attempts = attempts + 1,"
        " last_error = NULL WHERE id = %s",
        (outbox_id,),
    )


def mark_failed(
    conn: psycopg.Connection[Any], outbox_id: int, error: str, retry_in_seconds: float
) -> None:
    conn.execute(
        "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
        (error[:500], retry_in_seconds, outbox_id),
    )


def recent(
    conn: psycopg.Connection[Any], account_id: int | None, limit: int
) -> list[dict[str, Any]]:
    sql = (
        "SELECT l.id, a.number AS account, l.threshold, l.balance_before, l.balance_after,"
        " l.created_at, o.delivered_at, o.attempts, o.last_error"
        " FROM low_balance_alerts l JOIN accounts a ON a.id = l.account_id"
        " LEFT JOIN webhook_outbox o ON o.alert_id = l.id"
    )
    params: list[object] = []
    if account_id is not None:
        sql += " WHERE l.account_id = %s"
        params.append(account_id)
    sql += " ORDER BY l.id DESC LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()
