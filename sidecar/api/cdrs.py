"""CDR queries: search with filters and keyset pagination, one call by uuid, CSV export.

The export streams from its own connection (not the request pool, so a long export never
takes a connection CDR intake needs) through a server-side cursor in one REPEATABLE READ
snapshot; the request's auth check runs before the first byte. Every read here may lag
behind the primary: it goes to ``APOLO_REPORTS_DATABASE_URL`` when that is set.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from flask import Blueprint, Response, jsonify

from sidecar.api import _params as params
from sidecar.api._request import settings
from sidecar.auth import require
from sidecar.config import reports_url
from sidecar.db import get_reports_conn
from sidecar.errors import ApiError
from sidecar.imports.rates_csv import export_cell
from sidecar.jsonfmt import rfc3339
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import cdrs as cdrs_repo

bp = Blueprint("cdrs", __name__, url_prefix="/v1/cdrs")
_MONEY = ("rate_per_minute", "connection_fee", "cost")
_TEXT_CELLS = frozenset({"call_uuid", "source", "account", "caller", "callee", "destination",
                         "hangup_cause", "rate_prefix", "billing_status",
                         "caller_normalized"})  # fmt: skip
READERS = ("admin", "operator", "viewer")
_NO_COST = "0.0000"


def _public(row: dict[str, object]) -> dict[str, object]:
    """Money as decimal strings; a CDR nobody was charged for (unanswered, another leg,
    unrated) costs ``0.0000``, as its POST answered."""
    out = {k: (str(v) if k in _MONEY and v is not None else v) for k, v in row.items()}
    if "cost" in out and out["cost"] is None:
        out["cost"] = _NO_COST
    return out


def _with_ledger(conn: psycopg.Connection[Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ledger = cdrs_repo.ledger_rows_for(conn, [int(r["id"]) for r in rows]) if rows else []
    by_cdr: dict[int, list[dict[str, object]]] = {}
    for entry in ledger:
        by_cdr.setdefault(int(entry["cdr_id"]), []).append(
            {**entry, "amount": str(entry["amount"]), "balance_after": str(entry["balance_after"])}
        )
    return [{**_public(r), "ledger": by_cdr.get(int(r["id"]), [])} for r in rows]


def cdr_filter_from_request(conn: psycopg.Connection[Any]) -> cdrs_repo.CdrFilter:
    account_id = None
    if number := params.text("account"):
        account = accounts_repo.find_for_call(conn, number, "")
        if account is None:
            raise ApiError(404, "account_not_found", f"no account {number}")
        account_id = int(account["id"])
    return cdrs_repo.CdrFilter(
        start_from=params.timestamp("from"),
        start_to=params.timestamp("to"),
        account_id=account_id,
        caller=params.text("caller"),
        callee=params.text("callee"),
        destination_prefix=params.digits("destination"),
        hangup_cause=params.text("hangup_cause"),
        answered=params.boolean("answered"),
        min_cost=params.money("min_cost"),
        source=params.text("source"),
        billing_status=params.text("billing_status"),
        call_uuid=params.text("uuid"),
    )


@bp.get("")
@require(*READERS)
def list_cdrs():  # type: ignore[no-untyped-def]
    """Newest first; ``next_cursor`` (when present) is the ``cursor`` of the next page."""
    conn = get_reports_conn()
    flt = cdr_filter_from_request(conn)
    limit = params.integer("limit", 100, 1, 1000)
    assert limit is not None
    cursor = params.integer("cursor", None, 1, 2**63 - 1)
    rows = cdrs_repo.search(conn, flt, before_id=cursor, limit=limit)
    next_cursor = int(rows[-1]["id"]) if len(rows) == limit else None
    return jsonify({"cdrs": _with_ledger(conn, rows), "next_cursor": next_cursor})


@bp.get("/<call_uuid>")
@require(*READERS)
def get_cdr(call_uuid: str):  # type: ignore[no-untyped-def]
    conn = get_reports_conn()
    rows = cdrs_repo.by_uuid(conn, call_uuid)
    if not rows:
        raise ApiError(404, "cdr_not_found", f"no CDR for call {call_uuid}")
    return jsonify({"call_uuid": call_uuid, "legs": _with_ledger(conn, rows)})


@bp.get("/export.csv")
@require(*READERS)
def export_csv():  # type: ignore[no-untyped-def]
    flt = cdr_filter_from_request(get_reports_conn())
    url = reports_url(settings())
    name = f"cdrs-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.csv"
    return Response(
        export_stream(url, flt),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def export_stream(database_url: str, flt: cdrs_repo.CdrFilter) -> Iterator[str]:
    """The CSV, produced as it is read; the connection closes when the stream ends."""
    with psycopg.connect(database_url, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield from _chunked(format_cdr_csv(cdrs_repo.stream_export(conn, flt)))
        conn.rollback()


def _chunked(lines: Iterable[str], size: int = 64 * 1024) -> Iterator[str]:
    """About ``size`` characters per chunk: a line per write would cost the server a send
    (and a chunk header) per CDR."""
    buffer: list[str] = []
    length = 0
    for line in lines:
        buffer.append(line)
        length += len(line)
        if length >= size:
            yield "".join(buffer)
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(column: str, value: object) -> str:
    if value is None:
        return _NO_COST if column == "cost" else ""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    text = str(value)
    return export_cell(text) if column in _TEXT_CELLS else text


def format_cdr_csv(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """Header then one CRLF-terminated record per CDR; text cells that a spreadsheet would
    run as a formula (= + - @ tab CR) get a leading ' (as ``apolo rates export`` does)."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    columns = cdrs_repo.EXPORT_COLUMNS
    yield writer.writerow(columns)
    for row in rows:
        yield writer.writerow([_cell(c, v) for c, v in zip(columns, row, strict=True)])
