"""Call detail records. A CDR is unique on (call_uuid, leg): a repeat insert does nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
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
    "caller_normalized",
    "spans",
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
    " c.billing_status, c.billing_note, c.linked_uuids, c.received_at, c.caller_normalized,"
    " coalesce(c.spans, '[]'::jsonb) AS spans"
)


def insert_new(conn: psycopg.Connection[Any], row: dict[str, Any]) -> int | None:
    """Insert the CDR; its id, or None when this (call_uuid, leg) is already stored."""
    values = [row.get(c) for c in _COLUMNS]
    values[_COLUMNS.index("apolo_vars")] = Jsonb(row.get("apolo_vars") or {})
    values[_COLUMNS.index("linked_uuids")] = list(row.get("linked_uuids") or [])
    spans = row.get("spans")
    values[_COLUMNS.index("spans")] = None if spans is None else Jsonb(spans)
    found = conn.execute(_INSERT, values).fetchone()
    return None if found is None else int(found["id"])


@dataclass(frozen=True)
class IntakeContext:
    """What CDR intake reads before deciding, in one round trip and without locks: the
    leg's stored CDR (a retry), the call's reservation and the account holding it."""

    stored: dict[str, Any] | None
    reservation: dict[str, Any] | None
    account: dict[str, Any] | None


_INTAKE = (
    "SELECT q.n, k.id AS k_id, k.billing_status AS k_billing_status, k.cost AS k_cost,"
    " ka.number AS k_account,"
    " r.id AS r_id, r.account_id AS r_account_id, r.call_uuid AS r_call_uuid,"
    " r.amount AS r_amount, r.callee AS r_callee, r.status AS r_status,"
    " a.id AS a_id, a.number AS a_number, a.plan_id AS a_plan_id, a.type AS a_type,"
    " a.status AS a_status"
    " FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS q(uuid, leg, n)"
    " LEFT JOIN cdrs k ON k.call_uuid = q.uuid AND k.leg = q.leg"
    " LEFT JOIN accounts ka ON ka.id = k.account_id"
    " LEFT JOIN reservations r ON r.call_uuid = q.uuid"
    " LEFT JOIN accounts a ON a.id = r.account_id"
)


def _part(row: dict[str, Any], prefix: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if row[f"{prefix}_id"] is None:
        return None
    return {key: row[f"{prefix}_{key}"] for key in keys}


def intake_contexts(
    conn: psycopg.Connection[Any], legs: Sequence[tuple[str, str]]
) -> list[IntakeContext]:
    """The context of each (call_uuid, leg), in order: one round trip for any number."""
    found = conn.execute(_INTAKE, ([u for u, _ in legs], [leg for _, leg in legs])).fetchall()
    by_n = {int(r["n"]): r for r in found}
    out = []
    for n in range(1, len(legs) + 1):
        row = by_n[n]
        out.append(
            IntakeContext(
                _part(row, "k", ("id", "billing_status", "cost", "account")),
                _part(row, "r", ("id", "account_id", "call_uuid", "amount", "callee", "status")),
                _part(row, "a", ("id", "number", "plan_id", "type", "status")),
            )
        )
    return out


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # exact: jsonb_populate_record reads it back as numeric
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} into a CDR row")


def _dumps(row: object) -> str:
    return json.dumps(row, default=_json_value, separators=(",", ":"))


def settle(
    conn: psycopg.Connection[Any], rows: list[dict[str, Any]], actor: str
) -> list[dict[str, Any] | None]:
    """Store the CDR ``rows`` and apply their money decisions (``apolo_settle_cdrs``): one
    round trip for one CDR or a batch. One result per row, in row order: ``cdr_id``,
    ``billing_status``, ``cost``, ``account``, ``balance_before``, ``balance_after`` and
    ``low_balance_threshold``; None for a row that was not stored because its call leg
    already was (earlier, by a concurrent twin, or by an earlier row of ``rows``)."""
    payload = []
    for row in rows:
        values = {c: row.get(c) for c in _COLUMNS if c != "raw_xml"}
        values["linked_uuids"] = list(row.get("linked_uuids") or [])
        values["apolo_vars"] = row.get("apolo_vars") or {}
        payload.append(values)
    found = conn.execute(
        "SELECT * FROM apolo_settle_cdrs(%s, %b, %s)",  # %b: no escaping of kilobytes of XML
        (Jsonb(payload, _dumps), [row.get("raw_xml") for row in rows], actor),
    ).fetchall()
    by_leg = {(r["call_uuid"], r["leg"]): dict(r) for r in found}
    return [by_leg.pop((row["call_uuid"], row["leg"]), None) for row in rows]


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
    "rate_prefix", "rate_per_minute", "cost", "billing_status", "caller_normalized",
)  # fmt: skip
_EXPORT = (
    "SELECT c.id, c.call_uuid, c.leg, c.source, a.number, c.caller, c.callee, c.destination,"
    " c.start_at, c.answer_at, c.end_at, c.billsec, c.billed_seconds, c.hangup_cause,"
    " c.rate_prefix, c.rate_per_minute, c.cost, c.billing_status, c.caller_normalized"
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
