"""Helpers of the fraud-control tests (no tests here): settings, past charges, DB reads."""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

DEFAULTS = {"spike_factor": "5", "spike_min_spend": "10", "alert_window_seconds": 300}


def query(db_url: str, sql: str, *params: object) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def execute(db_url: str, sql: str, *params: object) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(sql, params)


def reset_settings(db_url: str, **changes: object) -> None:
    """fraud_settings is one shared row the data-table TRUNCATE leaves alone."""
    values = {**DEFAULTS, **changes}
    execute(
        db_url,
        "UPDATE fraud_settings SET spike_factor = %s, spike_min_spend = %s,"
        " alert_window_seconds = %s",
        values["spike_factor"], values["spike_min_spend"], values["alert_window_seconds"],
    )  # fmt: skip


def past_charge(db_url: str, number: str, amount: str, at: datetime) -> None:
    """A call charge made at ``at``: the balance and a ledger row stamped ``at``, as CDR
    intake writes them (the ledger trigger puts it in the account's spend slot of ``at``)."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "UPDATE accounts SET balance = balance - %s WHERE number = %s RETURNING id, balance",
            (Decimal(amount), number),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO ledger (account_id, kind, amount, balance_after, actor, note, created_at)"
            " VALUES (%s, 'call_charge', %s, %s, 'test', 'past call', %s)",
            (row["id"], -Decimal(amount), row["balance"], at),
        )


def alerts(db_url: str, control: str | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT f.id, f.control, a.number AS account, f.subject, f.detail, f.occurrences"
        " FROM fraud_alerts f LEFT JOIN accounts a ON a.id = f.account_id"
    )
    if control is None:
        return query(db_url, sql + " ORDER BY f.id")
    return query(db_url, sql + " WHERE f.control = %s ORDER BY f.id", control)


def audits(db_url: str, action: str) -> list[dict[str, Any]]:
    return query(
        db_url, "SELECT actor, target, before, after FROM audit_log WHERE action = %s"
        " ORDER BY id", action,
    )  # fmt: skip


def outbox(db_url: str, event: str) -> list[dict[str, Any]]:
    return query(
        db_url, "SELECT fraud_alert_id, payload FROM webhook_outbox WHERE event = %s ORDER BY id",
        event,
    )  # fmt: skip


def new_uuid() -> str:
    return str(uuidlib.uuid4())
