"""Fraud controls: per-account and per-plan configuration, shared settings, fraud alerts.

Writes are admin-only and audited (sidecar.services.fraud_controls); the request shapes
declared there give both the validation and the OpenAPI bodies of :data:`OPERATIONS`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from sidecar.api import _params as params
from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.services import fraud_controls as controls

bp = Blueprint("controls", __name__, url_prefix="/v1")
READERS = ("admin", "operator", "viewer")


@bp.get("/accounts/<number>/controls")
@require(*READERS)
def get_account_controls(number: str):  # type: ignore[no-untyped-def]
    return jsonify(controls.account_controls(get_conn(), number))


@bp.patch("/accounts/<number>/controls")
@require("admin")
def patch_account_controls(number: str):  # type: ignore[no-untyped-def]
    return jsonify(
        controls.update_account_controls(get_conn(), actor=g.actor, number=number, body=json_body())
    )


@bp.get("/rate-plans/<name>/controls")
@require(*READERS)
def get_plan_controls(name: str):  # type: ignore[no-untyped-def]
    return jsonify(controls.plan_controls(get_conn(), name))


@bp.patch("/rate-plans/<name>/controls")
@require("admin")
def patch_plan_controls(name: str):  # type: ignore[no-untyped-def]
    return jsonify(
        controls.update_plan_controls(get_conn(), actor=g.actor, name=name, body=json_body())
    )


@bp.get("/fraud/settings")
@require(*READERS)
def get_settings():  # type: ignore[no-untyped-def]
    return jsonify(controls.settings(get_conn()))


@bp.patch("/fraud/settings")
@require("admin")
def patch_settings():  # type: ignore[no-untyped-def]
    return jsonify(controls.update_settings(get_conn(), actor=g.actor, body=json_body()))


@bp.get("/alerts/fraud")
@require(*READERS)
def fraud_alerts():  # type: ignore[no-untyped-def]
    limit = params.integer("limit", 100, 1, 1000)
    assert limit is not None
    rows = controls.alerts(
        get_conn(), account=params.text("account"), control=params.text("control"), limit=limit
    )
    return jsonify({"alerts": rows})


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}  # fmt: skip


def _body(fields: dict[str, controls.Field]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": controls.body_schema(fields)}},
    }


# the hand-written part of these routes' OpenAPI operations (merged by sidecar.api.openapi)
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/accounts/{number}/controls", "get"): {
        "summary": "Fraud controls of an account (and its plan's rules), spent today",
    },
    ("/v1/accounts/{number}/controls", "patch"): {
        "summary": "Set an account's destination rules, calls per minute, daily spend limit, "
        "time zone or spike factor (audited)",
        "description": "Lists replace the whole list. The longest matching prefix decides; on "
        "the same prefix the account's rule beats the plan's; with any allow rule (account or "
        "plan), numbers no rule matches are refused.",
        "requestBody": _body(controls.ACCOUNT_FIELDS),
    },
    ("/v1/rate-plans/{name}/controls", "get"): {"summary": "Destination rules of a rate plan"},
    ("/v1/rate-plans/{name}/controls", "patch"): {
        "summary": "Set a rate plan's allow and deny prefixes (audited)",
        "requestBody": _body(controls.RULE_FIELDS),
    },
    ("/v1/fraud/settings", "get"): {"summary": "Spend-spike factor, its floor, alert window"},
    ("/v1/fraud/settings", "patch"): {
        "summary": "Change the spend-spike default factor, its floor or the alert window (audited)",
        "requestBody": _body(controls.SETTINGS_FIELDS),
    },
    ("/v1/alerts/fraud", "get"): {
        "summary": "Fraud alerts (one per account and control per window) and their webhooks",
        "parameters": [
            _q("account", "account number"),
            _q("control", ", ".join(controls.CONTROLS)),
            _q("limit", "1-1000, default 100", {"type": "integer", "minimum": 1}),
        ],
    },
}
