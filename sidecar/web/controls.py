"""Fraud controls pages: shared settings and plan rules; one account's controls.

Forms go through the same validation and audited writes as ``PATCH /v1/.../controls``
(sidecar.services.fraud_controls). A rule list is a textarea, one ``PREFIX note`` a line.
"""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request

from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.repo import fraud as fraud_repo
from sidecar.services import fraud_controls
from sidecar.web.blueprint import bp
from sidecar.web.guard import ADMINS, READERS, page


def rules_text(entries: list[dict[str, str]]) -> str:
    return "\n".join(f"{e['prefix']} {e['note']}".strip() for e in entries)


def _rules_field(name: str) -> list[dict[str, str]]:
    entries = []
    for line in (request.form.get(name) or "").splitlines():
        prefix, _, note = line.strip().partition(" ")
        if prefix:
            entries.append({"prefix": prefix, "note": note.strip()})
    return entries


def _nullable(name: str) -> str | None:
    value = (request.form.get(name) or "").strip()
    return value or None


def _plans() -> list[dict[str, Any]]:
    plans: dict[str, dict[str, Any]] = {}
    for row in fraud_repo.plans_with_rules(get_conn()):
        plan = plans.setdefault(row["name"], {"name": row["name"], "allow": [], "deny": []})
        if row["verdict"]:
            plan[row["verdict"]].append({"prefix": row["prefix"], "note": row["note"]})
    return list(plans.values())


def _controls_page(status: int = 200, **extra: Any) -> Any:
    html = render_template(
        "controls.html",
        settings=fraud_controls.settings(get_conn()),
        plans=_plans(),
        rules_text=rules_text,
        done=request.args.get("done"),
        **extra,
    )
    return html, status


@bp.get("/controls")
@page(*READERS)
def controls_page() -> Any:
    return _controls_page()


@bp.post("/controls/settings")
@page(*ADMINS)
def controls_settings() -> Any:
    body = {
        "spike_factor": (request.form.get("spike_factor") or "").strip(),
        "spike_min_spend": (request.form.get("spike_min_spend") or "").strip(),
        "alert_window_seconds": _int_or_text(request.form.get("alert_window_seconds")),
    }
    try:
        fraud_controls.update_settings(get_conn(), actor=g.actor, body=body)
    except ApiError as exc:
        return _controls_page(exc.status, settings_error=exc.message)
    return redirect("/dashboard/controls?done=settings", code=303)


@bp.post("/controls/plans/<name>")
@page(*ADMINS)
def controls_plan(name: str) -> Any:
    body = {"allow": _rules_field("allow"), "deny": _rules_field("deny")}
    try:
        fraud_controls.update_plan_controls(get_conn(), actor=g.actor, name=name, body=body)
    except ApiError as exc:
        return _controls_page(exc.status, plan_error=exc.message, error_plan=name)
    return redirect("/dashboard/controls?done=plan", code=303)


def _int_or_text(raw: str | None) -> object:
    value = (raw or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else value


def _account_page(number: str, status: int = 200, error: str = "") -> Any:
    try:
        view = fraud_controls.account_controls(get_conn(), number)
    except ApiError as exc:
        return render_template("error.html", message=exc.message), exc.status
    alerts = fraud_controls.alerts(get_conn(), account=number, limit=20)
    html = render_template(
        "account_controls.html",
        controls=view,
        alerts=alerts,
        rules_text=rules_text,
        error=error,
        done=request.args.get("done") == "saved",
    )
    return html, status


@bp.get("/accounts/<number>/controls")
@page(*READERS)
def account_controls_page(number: str) -> Any:
    return _account_page(number)


@bp.post("/accounts/<number>/controls")
@page(*ADMINS)
def account_controls_save(number: str) -> Any:
    per_minute = _nullable("max_calls_per_minute")
    body = {
        "allow": _rules_field("allow"),
        "deny": _rules_field("deny"),
        "max_calls_per_minute": None if per_minute is None else _int_or_text(per_minute),
        "daily_spend_limit": _nullable("daily_spend_limit"),
        "time_zone": (request.form.get("time_zone") or "").strip() or "UTC",
        "spend_spike_factor": _nullable("spend_spike_factor"),
    }
    try:
        fraud_controls.update_account_controls(get_conn(), actor=g.actor, number=number, body=body)
    except ApiError as exc:
        if exc.status == 404:
            return render_template("error.html", message=exc.message), 404
        return _account_page(number, exc.status, exc.message)
    return redirect(f"/dashboard/accounts/{number}/controls?done=saved", code=303)
