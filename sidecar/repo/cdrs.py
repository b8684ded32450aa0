"""Call detail records. A CDR is unique on (call_uuid, leg): a repeat insert does nothing."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_COLUMNS = (
    "source",
    "call_uuid",
    "leg",
    "core_uuid",
    "switchname",
    "direction",
    "caller",
    "callee",
    "destination",
    "account_id",
    "reservation_id",
    "start_at",
    "answer_at",
    "end_at",
    "billusec",
    "billsec",
    "fs_billsec",
    "hangup_cause",
    "hangup_cause_q850",
    "rate_id",
    "rate_prefix",
    "rate_per_minute",
    "connection_fee",
    "billed_seconds",
    "cost",
    "billing_status",
    "billing_note",
    "linked_uuids",
    "apolo_vars",
    "raw_xml",
)
_INSERT = (
    f"INSERT INTO cdrs ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
    " ON CONFLICT (call_uuid, leg) DO NOTHING RETURNING id"
)
_PUBLIC = (
    "c.id, c.source, c.call_uuid, c.leg, c.switchname, c.direction, c.caller, c.callee,"
    " c.destination, a.number AS account, c.reservation_id, c.start_at, c.answer_at, c.end_at,"
    " c.billusec, c.billsec, c.fs_billsec, c.hangup_cause, c.hangup_cause_q850, c.rate_id,"
    " c.rate_prefix, c.rate_per_minute, c.connection_fee, c.billed_seconds, c.cost,"
    " c.billing_status, c.billing_note, c.linked_uuids, c.received_at"
)


def insert_new(conn: psycopg.Connection[Any], row: dict[str, Any]) -> int | None:
    """Insert the CDR; its id, or None when this (call_uuid, leg) is already stored."""
    values = [row.get(c) for c in _COLUMNS]
    values[_COLUMNS.index("apolo_vars")] = Jsonb(row.get("apolo_vars") or {})
    values[_COLUMNS.index("linked_uuids")] = list(row.get("linked_uuids") or [])
    found = conn.execute(_INSERT, values).fetchone()
    return None if found is None else int(found["id"])


def stored(conn: psycopg.Connection[Any], call_uuid: str, leg: str) -> dict[str, Any] | None:
    """The stored CDR of this leg (id, billing status, cost, account number), if any."""
    return conn.execute(
        "SELECT c.id, c.billing_status, c.cost, a.number AS account"
        " FROM cdrs c LEFT JOIN accounts a ON a.id = c.account_id"
        " WHERE c.call_uuid = %s AND c.leg = %s",
        (call_uuid, leg),
    ).fetchone()


def find(
    conn: psycopg.Connection[Any],
    *,
    uuid: str | None = None,
    account_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    where: list[str] = []
    params: list[object] = []
    if uuid:
        where.append("c.call_uuid = %s")
        params.append(uuid)
    if account_id is not None:
        where.append("c.account_id = %s")
        params.append(account_id)
    sql = f"SELECT {_PUBLIC} FROM cdrs c LEFT JOIN accounts a ON a.id = c.account_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.id DESC LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


def ledger_rows_for(conn: psycopg.Connection[Any], cdr_ids: list[int]) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, cdr_id, kind, amount, balance_after, created_at FROM ledger"
        " WHERE cdr_id = ANY(%s) ORDER BY id",
        (cdr_ids,),
    ).fetchall()
