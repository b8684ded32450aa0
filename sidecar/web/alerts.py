"""Alerts page: fraud controls that acted, accounts that crossed their low-balance threshold,
and the delivery of each alert's webhook."""

from __future__ import annotations

from typing import Any

from flask import render_template

from sidecar.db import get_conn
from sidecar.repo import alerts
from sidecar.repo import fraud as fraud_repo
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, page

PAGE_SIZE = 100


@bp.get("/alerts")
@page(*READERS)
def alerts_page() -> Any:
    conn = get_conn()
    rows = alerts.recent(conn, None, PAGE_SIZE)
    fraud = fraud_repo.recent_alerts(conn, limit=PAGE_SIZE)
    return render_template("alerts.html", alerts=rows, fraud=fraud)
