"""Call detail records. A CDR is unique on (call_uuid, leg): a repeat insert does nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import tuple_row
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


# --------------------------------------------------------------- search, detail and export


@dataclass(frozen=True)
class CdrFilter:
    """Filters of the CDR search and export; every field is optional (None = any)."""

    start_from: datetime | None = None  # start_at >= start_from
    start_to: datetime | None = None  # start_at < start_to
    account_id: int | None = None
    caller: str | None = None
    callee: str | None = None
    destination_prefix: str | None = None  # digits only (checked by the caller)
    hangup_cause: str | None = None
    answered: bool | None = None
    min_cost: Decimal | None = None
    source: str | None = None
    billing_status: str | None = None
    call_uuid: str | None = None

    def where(self) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (
            ("c.account_id", self.account_id),
            ("c.caller", self.caller),
            ("c.callee", self.callee),
            ("c.hangup_cause", self.hangup_cause),
            ("c.source", self.source),
            ("c.billing_status", self.billing_status),
            ("c.call_uuid", self.call_uuid),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if self.start_from is not None:
            clauses.append("c.start_at >= %s")
            params.append(self.start_from)
        if self.start_to is not None:
            clauses.append("c.start_at < %s")
            params.append(self.start_to)
        if self.destination_prefix is not None:
            clauses.append("c.destination LIKE %s")
            params.append(self.destination_prefix + "%")
        if self.answered is True:
            clauses.append("c.answer_at IS NOT NULL AND c.billsec > 0")
        elif self.answered is False:
            clauses.append("(c.answer_at IS NULL OR c.billsec = 0)")
        if self.min_cost is not None:
            clauses.append("c.cost >= %s")
            params.append(self.min_cost)
        return clauses, params


def search(
    conn: psycopg.Connection[Any], flt: CdrFilter, *, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """One page, newest id first; the next page is ``before_id`` = the last id returned."""
    clauses, params = flt.where()
    if before_id is not None:
        clauses.append("c.id < %s")
        params.append(before_id)
    sql = f"SELECT {_PUBLIC} FROM cdrs c LEFT JOIN accounts a ON a.id = c.account_id"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY c.id DESC LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


def by_uuid(conn: psycopg.Connection[Any], call_uuid: str) -> list[dict[str, Any]]:
    """Every leg stored under this call uuid (a, then b)."""
    return conn.execute(
        f"SELECT {_PUBLIC} FROM cdrs c LEFT JOIN accounts a ON a.id = c.account_id"
        " WHERE c.call_uuid = %s ORDER BY c.leg",
        (call_uuid,),
    ).fetchall()


EXPORT_COLUMNS = (
    "id", "call_uuid", "leg", "source", "account", "caller", "callee", "destination",
    "start_at", "answer_at", "end_at", "billsec", "billed_seconds", "hangup_cause",
    "rate_prefix", "rate_per_minute", "cost", "billing_status",
)  # fmt: skip
_EXPORT = (
    "SELECT c.id, c.call_uuid, c.leg, c.source, a.number, c.caller, c.callee, c.destination,"
    " c.start_at, c.answer_at, c.end_at, c.billsec, c.billed_seconds, c.hangup_cause,"
    " c.rate_prefix, c.rate_per_minute, c.cost, c.billing_status"
    " FROM cdrs c LEFT JOIN accounts a ON a.id = c.account_id"
)


def stream_export(
    conn: psycopg.Connection[Any], flt: CdrFilter, batch_rows: int = 1000
) -> Iterator[tuple[Any, ...]]:
    """The matching CDRs as tuples in :data:`EXPORT_COLUMNS` order, oldest id first,
    fetched ``batch_rows`` at a time by a server-side cursor (never all in memory).
    Needs an open transaction on ``conn`` (autocommit off) for the cursor's lifetime."""
    clauses, params = flt.where()
    sql = _EXPORT + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY c.id"
    with conn.cursor(name="apolo_cdr_export", row_factory=tuple_row) as cur:
        cur.itersize = batch_rows
        cur.execute(sql, params)
        yield from cur
