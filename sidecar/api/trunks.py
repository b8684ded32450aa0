"""Trunks: /v1/trunks (read: every role; write: admin, audited)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.services import trunks as trunks_service

bp = Blueprint("trunks", __name__, url_prefix="/v1/trunks")
_FIELDS = {"name", "cidrs", "account", "trust_caller_id", "trust_billing_header"}


@bp.get("")
@require("admin", "operator", "viewer")
def list_trunks():  # type: ignore[no-untyped-def]
    return jsonify({"trunks": trunks_service.list_trunks(get_conn())})


@bp.post("")
@require("admin")
def create_trunk():  # type: ignore[no-untyped-def]
    body = json_body()
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ApiError(400, "invalid_request", "unknown fields", {"fields": unknown})
    name, cidrs, account = body.get("name"), body.get("cidrs"), body.get("account")
    if not isinstance(name, str):
        raise ApiError(400, "invalid_request", "name is required (a string)")
    if not isinstance(cidrs, list) or not all(isinstance(c, str) for c in cidrs):
        raise ApiError(400, "invalid_request", "cidrs must be a list of strings")
    if account is not None and not isinstance(account, str):
        raise ApiError(400, "invalid_request", "account must be an account number (a string)")
    flags = {}
    for flag in ("trust_caller_id", "trust_billing_header"):
        value = body.get(flag, False)
        if not isinstance(value, bool):
            raise ApiError(400, "invalid_request", f"{flag} must be true or false")
        flags[flag] = value
    created = trunks_service.create_trunk(
        get_conn(), actor=g.actor, name=name, cidrs=cidrs, account=account, **flags
    )
    return jsonify(created), 201


@bp.delete("/<name>")
@require("admin")
def delete_trunk(name: str):  # type: ignore[no-untyped-def]
    return jsonify(trunks_service.delete_trunk(get_conn(), actor=g.actor, name=name))
