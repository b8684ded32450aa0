"""Rates page forms of an admin: timings of a plan, number normalization rules.

Each form posts here with the session's CSRF token, goes through the same audited
services as the API and the CLI, and comes back to the rates page (303) or shows the
page again with the error (400/404/409).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import g, redirect, request

from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.services import number_rules, plans
from sidecar.web.blueprint import bp
from sidecar.web.guard import ADMINS, page
from sidecar.web.rates import rates_page_with


def _back(plan: str, done: str) -> Any:
    return redirect(f"/dashboard/rates?plan={quote(plan)}&done={done}", code=303)


def _field(name: str, limit: int = 200) -> str:
    return (request.form.get(name) or "").strip()[:limit]


@bp.post("/rates/timings")
@page(*ADMINS)
def add_timing() -> Any:
    plan = _field("plan")
    body = {k: _field(k, 4000) for k in ("name", "days", "from", "to", "dates")}
    try:
        plans.create_timing(get_conn(), g.actor, plan, {k: v for k, v in body.items() if v})
    except ApiError as exc:
        return rates_page_with(exc.status, timing_error=_message(exc), timing_form=body)
    return _back(plan, "timing")


@bp.post("/rates/timings/delete")
@page(*ADMINS)
def delete_timing() -> Any:
    plan = _field("plan")
    try:
        plans.delete_timing(get_conn(), g.actor, plan, _field("name"))
    except ApiError as exc:
        return rates_page_with(exc.status, timing_error=_message(exc))
    return _back(plan, "timing-deleted")


@bp.post("/rates/number-rules")
@page(*ADMINS)
def add_number_rule() -> Any:
    plan = _field("plan")
    owner = _field("owner")  # plan, switch or cucm_cluster
    body: dict[str, Any] = {
        "direction": _field("direction"), "strip": _field("strip"), "add": _field("add"),
        "min_length": _field("min_length") or None, "max_length": _field("max_length") or None,
    }  # fmt: skip
    body[owner if owner in number_rules.OWNERS else "plan"] = (
        plan if owner == "plan" else _field("source_name")
    )
    try:
        number_rules.add_rule(get_conn(), g.actor, {k: v for k, v in body.items() if v})
    except ApiError as exc:
        return rates_page_with(exc.status, rule_error=_message(exc))
    return _back(plan, "rule")


@bp.post("/rates/number-rules/delete")
@page(*ADMINS)
def delete_number_rule() -> Any:
    plan = _field("plan")
    raw = _field("rule_id")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        return rates_page_with(400, rule_error="No such rule.")
    try:
        number_rules.delete_rule(get_conn(), g.actor, int(raw))
    except ApiError as exc:
        return rates_page_with(exc.status, rule_error=_message(exc))
    return _back(plan, "rule-deleted")


def _message(exc: ApiError) -> str:
    fields = exc.details.get("fields")
    if isinstance(fields, dict) and fields:
        return exc.message + ": " + "; ".join(f"{k}: {v}" for k, v in fields.items())
    return exc.message
