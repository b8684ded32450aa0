"""CDR queries."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import cdrs as cdrs_repo

bp = Blueprint("cdrs", __name__, url_prefix="/v1/cdrs")
_MONEY = ("rate_per_minute", "connection_fee", "cost")


def _public(row: dict[str, object]) -> dict[str, object]:
    return {k: (str(v) if k in _MONEY and v is not None else v) for k, v in row.items()}


@bp.get("")
@require("admin", "operator", "viewer")
def list_cdrs():  # type: ignore[no-untyped-def]
    conn = get_conn()
    account_id = None
    if number := request.args.get("account"):
        account = accounts_repo.find_for_call(conn, number, "")
        if account is None:
            raise ApiError(404, "account_not_found", f"no account {number}")
        account_id = int(account["id"])
    try:
        limit = min(max(int(request.args.get("limit", "100")), 1), 1000)
    except ValueError:
        raise ApiError(400, "invalid_request", "limit must be an integer") from None
    rows = cdrs_repo.find(conn, uuid=request.args.get("uuid"), account_id=account_id, limit=limit)
    ledger = cdrs_repo.ledger_rows_for(conn, [int(r["id"]) for r in rows]) if rows else []
    by_cdr: dict[int, list[dict[str, object]]] = {}
    for entry in ledger:
        by_cdr.setdefault(int(entry["cdr_id"]), []).append(
            {**entry, "amount": str(entry["amount"]), "balance_after": str(entry["balance_after"])}
        )
    return jsonify({"cdrs": [{**_public(r), "ledger": by_cdr.get(int(r["id"]), [])} for r in rows]})
