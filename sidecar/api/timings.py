"""Timings of a rate plan: ``/v1/rate-plans/NAME/timings`` (reads: all; writes: admin,
audited). A rate names a timing through its ``timing`` field; a timing in use cannot be
deleted. Changing one makes a new version of the plan (workers reload it)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.services import plans

bp = Blueprint("timings", __name__, url_prefix="/v1/rate-plans/<name>/timings")
READERS = ("admin", "operator", "viewer")

# the request shape (OpenAPI); ``sidecar.services.plans.parse_timing`` reads these fields
TIMING_FIELDS = {
    "days": {"type": "string", "examples": ["mon-fri", "sat,sun"],
             "description": "empty: every day"},
    "from": {"type": "string", "examples": ["08:00"], "description": "HH:MM, plan's time zone"},
    "to": {"type": "string", "examples": ["20:00", "24:00"], "description": "exclusive; "
           "not after 'from' wraps past midnight"},
    "dates": {"type": "array", "items": {"type": "string", "format": "date"},
              "description": "local dates; empty: any date"},
}  # fmt: skip
TIMING_BODY = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        **TIMING_FIELDS,
    },
    "additionalProperties": False,
}
TIMING_UPDATE = {"type": "object", "properties": TIMING_FIELDS, "additionalProperties": False}
assert set(TIMING_BODY["properties"]) == plans.TIMING_KEYS  # type: ignore[call-overload]


@bp.get("")
@require(*READERS)
def list_timings(name: str):  # type: ignore[no-untyped-def]
    return jsonify({"plan": name, "timings": plans.list_timings(get_conn(), name)})


@bp.post("")
@require("admin")
def create_timing(name: str):  # type: ignore[no-untyped-def]
    return jsonify(plans.create_timing(get_conn(), g.actor, name, json_body())), 201


@bp.patch("/<timing>")
@require("admin")
def update_timing(name: str, timing: str):  # type: ignore[no-untyped-def]
    return jsonify(plans.update_timing(get_conn(), g.actor, name, timing, json_body()))


@bp.delete("/<timing>")
@require("admin")
def delete_timing(name: str, timing: str):  # type: ignore[no-untyped-def]
    plans.delete_timing(get_conn(), g.actor, name, timing)
    return "", 204
