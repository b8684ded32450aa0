"""CDRs: the API's filters as a form, one page of results, the CSV export link, and one
call's legs with their spans (the call priced across rate boundaries).

The filters are parsed by the same helpers as ``GET /v1/cdrs``; a bad filter is shown on
the page (400) instead of a JSON error. The export link is ``/v1/cdrs/export.csv`` with
the same query, which the session cookie authorizes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import render_template, request

from sidecar.api.cdrs import cdr_filter_from_request
from sidecar.db import get_reports_conn
from sidecar.errors import ApiError
from sidecar.repo import cdrs as cdrs_repo
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, page

PAGE_SIZE = 50
FILTERS = ("from", "to", "account", "caller", "callee", "destination", "hangup_cause",
           "answered", "min_cost")  # fmt: skip


@bp.get("/cdrs")
@page(*READERS)
def cdrs_page() -> Any:
    values = {k: (request.args.get(k) or "").strip()[:100] for k in FILTERS}
    query = urlencode({k: v for k, v in values.items() if v})
    conn = get_reports_conn()  # may lag behind the primary
    raw_before = request.args.get("before") or ""
    before = int(raw_before) if raw_before.isdigit() and len(raw_before) < 19 else None
    try:
        rows = cdrs_repo.search(
            conn, cdr_filter_from_request(conn), before_id=before, limit=PAGE_SIZE
        )
    except ApiError as exc:
        html = render_template("cdrs.html", cdrs=[], values=values, query=query,
                               error=exc.message, more=None)  # fmt: skip
        return html, 400 if exc.status == 400 else exc.status
    more = rows[-1]["id"] if len(rows) == PAGE_SIZE else None
    return render_template("cdrs.html", cdrs=rows, values=values, query=query, error="", more=more)


@bp.get("/cdrs/<call_uuid>")
@page(*READERS)
def cdr_page(call_uuid: str) -> Any:
    conn = get_reports_conn()  # may lag behind the primary
    legs = cdrs_repo.by_uuid(conn, call_uuid[:200])
    if not legs:
        return render_template("error.html", message=f"No CDR for call {call_uuid}."), 404
    return render_template("cdr.html", call_uuid=call_uuid, legs=legs)
