"""Overview: today's traffic (UTC day), a per-hour chart, the live call count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import redirect, render_template

from sidecar.api.calls import current_calls
from sidecar.db import get_reports_conn
from sidecar.repo import reports as reports_repo
from sidecar.services import reports as reports_service
from sidecar.web.blueprint import bp
from sidecar.web.charts import HEIGHT, LABEL_ROOM, WIDTH, hourly_bars
from sidecar.web.guard import READERS, page


def live_count() -> int | None:
    """Calls in the live table, or None when Redis cannot say."""
    try:
        return len(current_calls())
    except Exception:
        return None


@bp.get("")
def root() -> Any:
    return redirect("/dashboard/", code=302)


@bp.get("/")
@page(*READERS)
def overview() -> Any:
    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = reports_repo.traffic(get_reports_conn(), "hour", start, start + timedelta(days=1))
    report = reports_service.report_rows(rows)
    return render_template(
        "overview.html",
        day=start.date().isoformat(),
        totals=reports_service.totals(rows),
        calls_bars=hourly_bars(report, "calls"),
        revenue_bars=hourly_bars(report, "revenue"),
        chart={"width": WIDTH, "height": HEIGHT, "label_room": LABEL_ROOM},
        active=live_count(),
    )
