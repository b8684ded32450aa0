"""Reports, rerating and low-balance alerts under ``/v1``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from flask import Blueprint, g, jsonify

from sidecar.api import _params as params
from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn, get_reports_conn
from sidecar.errors import ApiError
from sidecar.jsonfmt import rfc3339
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import alerts as alerts_repo
from sidecar.repo import rate_admin
from sidecar.repo import reports as reports_repo
from sidecar.repo import rerating as rerating_repo
from sidecar.services import reports as reports_service
from sidecar.services import rerating

bp = Blueprint("reports", __name__, url_prefix="/v1")
READERS = ("admin", "operator", "viewer")
MAX_RANGE_DAYS = 366


def _account_id(number: str | None, conn: psycopg.Connection[Any] | None = None) -> int | None:
    if not number:
        return None
    account = accounts_repo.find_for_call(conn or get_conn(), number, "")
    if account is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    return int(account["id"])


def _range() -> tuple[datetime, datetime]:
    start = params.timestamp("from", required=True)
    end = params.timestamp("to", required=True)
    assert start is not None and end is not None
    _check_range(start, end)
    return start, end


def _check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise params.bad("to must be later than from")
    if (end - start).days > MAX_RANGE_DAYS:
        raise params.bad(f"the range may span at most {MAX_RANGE_DAYS} days")


@bp.get("/reports/traffic")
@require(*READERS)
def traffic():  # type: ignore[no-untyped-def]
    """``group`` = hour | day | account | destination over ``[from, to)``."""
    group = params.text("group") or "day"
    if group not in reports_repo.GROUPS:
        raise params.bad(f"group must be one of {', '.join(reports_repo.GROUPS)}")
    start, end = _range()
    conn = get_reports_conn()  # may lag behind the primary
    rows = reports_repo.traffic(
        conn, group, start, end, account_id=_account_id(params.text("account"), conn)
    )
    return jsonify(
        {
            "group": group,
            "from": rfc3339(start),
            "to": rfc3339(end),
            "rows": reports_service.report_rows(rows),
            "totals": reports_service.totals(rows),
        }
    )


@bp.get("/reports/top-destinations")
@require(*READERS)
def top_destinations():  # type: ignore[no-untyped-def]
    start, end = _range()
    limit = params.integer("limit", 10, 1, 1000)
    assert limit is not None
    conn = get_reports_conn()  # may lag behind the primary
    rows = reports_repo.traffic(
        conn,
        "destination",
        start,
        end,
        account_id=_account_id(params.text("account"), conn),
        order_by_revenue=True,
        limit=limit,
    )
    return jsonify({"from": rfc3339(start), "to": rfc3339(end),
                    "rows": reports_service.report_rows(rows)})  # fmt: skip


# --------------------------------------------------------------------------- rerating


def _scope(body: dict[str, Any]) -> rerating.Scope:
    start = params.parse_timestamp(body.get("from"), "from")
    end = params.parse_timestamp(body.get("to"), "to")
    _check_range(start, end)
    plan_id = None
    if (plan := body.get("plan")) is not None:
        if not isinstance(plan, str):
            raise params.bad("plan must be a plan name")
        found = rate_admin.get_plan(get_conn(), plan)
        if found is None:
            raise ApiError(404, "plan_not_found", f"no rate plan named {plan!r}")
        plan_id = int(found["id"])
    account = body.get("account")
    if account is not None and not isinstance(account, str):
        raise params.bad("account must be an account number")
    return rerating.Scope(start, end, plan_id, _account_id(account))


@bp.post("/rerating/preview")
@require("admin", "operator")
def rerating_preview():  # type: ignore[no-untyped-def]
    """Per-CDR old/new cost and per-account totals; changes nothing."""
    return jsonify(rerating.preview(get_conn(), _scope(json_body())))


@bp.post("/rerating/apply")
@require("admin")
def rerating_apply():  # type: ignore[no-untyped-def]
    return jsonify(rerating.apply(get_conn(), _scope(json_body()), g.actor)), 201


@bp.get("/rerating/runs")
@require(*READERS)
def rerating_runs():  # type: ignore[no-untyped-def]
    rows = rerating_repo.runs(get_conn())
    return jsonify({"runs": [{**r, "total_delta": str(r["total_delta"])} for r in rows]})


# --------------------------------------------------------------------------- alerts


@bp.get("/alerts/low-balance")
@require(*READERS)
def low_balance_alerts():  # type: ignore[no-untyped-def]
    limit = params.integer("limit", 100, 1, 1000)
    assert limit is not None
    rows = alerts_repo.recent(get_conn(), _account_id(params.text("account")), limit)
    money = ("threshold", "balance_before", "balance_after")
    return jsonify(
        {"alerts": [{k: str(v) if k in money else v for k, v in r.items()} for r in rows]}
    )
