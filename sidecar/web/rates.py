"""Rates: plans (time zone, parent), a plan's timings and number rules, a search in one
plan, and the CSV import form (admin).

The import goes through the same validator and staging table as ``apolo rates import`` and
``POST /v1/rate-plans/NAME/import``: all or nothing, errors listed by line. The page's
script sends the form with upload progress; without the script the form posts normally.
Timings and number rules are added and deleted by ``sidecar.web.rating_admin``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import g, render_template, request

from sidecar.api.rates import ERROR_LIMIT, WARNING_LIMIT, import_max_bytes
from sidecar.db import get_conn
from sidecar.imports import rates_csv
from sidecar.imports.rates_csv import ErrorLog, RateRow, RowError
from sidecar.repo import audit, rate_import, timings
from sidecar.repo import number_rules as rules_repo
from sidecar.repo import rate_admin as repo
from sidecar.request_guard import body_limit
from sidecar.services import number_rules, plans
from sidecar.services.rate_warnings import plan_warnings
from sidecar.web.blueprint import bp
from sidecar.web.guard import ADMINS, READERS, page

PAGE_SIZE = 100


def _digits(raw: str | None) -> str:
    value = (raw or "").strip().removeprefix("+")
    return value if value.isascii() and value.isdigit() and len(value) <= 32 else ""


def _page(status: int = 200, **extra: Any) -> Any:
    conn = get_conn()
    all_plans = repo.list_plans(conn)
    name = request.values.get("plan") or (all_plans[0]["name"] if all_plans else "")
    plan = next((p for p in all_plans if p["name"] == name), None)
    search = {
        "prefix": _digits(request.args.get("prefix")),
        "name": (request.args.get("name") or "").strip()[:200],
    }
    raw_after = request.args.get("after") or ""
    after = int(raw_after) if raw_after.isdigit() and len(raw_after) < 19 else None
    rates: list[dict[str, Any]] = []
    if plan is not None:
        rates = repo.search_rates(
            conn, int(plan["id"]), prefix=search["prefix"] or None, matching=None,
            name=search["name"] or None, after_id=after, limit=PAGE_SIZE,
        )  # fmt: skip
    more = rates[-1]["id"] if len(rates) == PAGE_SIZE else None
    plan_timings, plan_rules = [], []
    if plan is not None:
        plan_timings = [plans.public_timing(t) for t in timings.list_for_plan(conn, plan["id"])]
        plan_rules = [number_rules.public(r) for r in rules_repo.search(conn, plan_id=plan["id"])]
    source_rules = [number_rules.public(r) for r in rules_repo.search(conn) if r["source"]]
    html = render_template(
        "rates.html", plans=all_plans, plan=plan, rates=rates, search=search, more=more,
        timings=plan_timings, plan_rules=plan_rules, source_rules=source_rules,
        done=request.args.get("done", ""), **extra,
    )  # fmt: skip
    return html, status


def rates_page_with(status: int, **extra: Any) -> Any:
    """The rates page again (the form's plan selected) with an error or a form kept."""
    return _page(status, **extra)


@bp.get("/rates")
@page(*READERS)
def rates_page() -> Any:
    return _page()


def _accepted(items: Iterable[RateRow | RowError], errors: ErrorLog) -> Iterator[RateRow]:
    for item in items:
        if isinstance(item, RowError):
            errors.add(item)
        else:
            yield item


@bp.post("/rates/import")
@page(*ADMINS)
@body_limit(import_max_bytes)
def import_rates() -> Any:
    name = (request.form.get("plan") or "").strip()
    upload = request.files.get("file")
    if not name or len(name) > 200:
        return _page(400, import_error="Name the rate plan to import into (1-200 characters).")
    if upload is None or not upload.filename:
        return _page(400, import_error="Choose a CSV file to import.")
    replace = request.form.get("replace") == "on"
    errors = ErrorLog(ERROR_LIMIT)
    text = io.TextIOWrapper(
        upload.stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    conn = get_conn()
    rows = rates_csv.iter_rate_rows(text, datetime.now(UTC))
    rate_import.stage_rates(conn, _accepted(rows, errors))
    duplicates, total = rate_import.staged_errors(conn, name, ERROR_LIMIT - len(errors.shown))
    errors.extend(duplicates, total)
    if errors:
        listed = sorted(errors.shown, key=lambda e: e.line)
        return _page(422, import_errors=listed, error_count=errors.count, omitted=errors.omitted,
                     import_plan=name)  # fmt: skip
    count = rate_import.apply_staged(conn, name, replace=replace)
    plan = repo.get_plan(conn, name)
    assert plan is not None
    found, warning_count = plan_warnings(repo.plan_rates(conn, int(plan["id"])), WARNING_LIMIT)
    after = {"source": f"dashboard upload {upload.filename}"[:300], "rates": count,
             "replace": replace}  # fmt: skip
    audit.record(conn, g.actor, "rates.import", f"rate_plan:{name}", None, after)
    return _page(201, imported=count, import_plan=name, warnings=found,
                 warning_count=warning_count)  # fmt: skip


_ = RateRow  # the rows _accepted yields
