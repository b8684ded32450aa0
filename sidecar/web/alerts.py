"""Low-balance alerts page: the accounts that crossed their threshold, and webhook delivery."""

from __future__ import annotations

from typing import Any

from flask import render_template

from sidecar.db import get_conn
from sidecar.repo import alerts
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, page

PAGE_SIZE = 100


@bp.get("/alerts")
@page(*READERS)
def alerts_page() -> Any:
    rows = alerts.recent(get_conn(), None, PAGE_SIZE)
    return render_template("alerts.html", alerts=rows)
