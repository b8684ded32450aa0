"""Number normalization rules: ``/v1/number-rules`` (reads: all; writes: admin, audited).

A rule belongs to one owner (``plan``, ``switch`` or ``cucm_cluster``) and a direction
(``callee`` / ``caller``); ``GET /v1/number-rules/normalize`` shows what a number becomes.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.services import number_rules

bp = Blueprint("number_rules", __name__, url_prefix="/v1/number-rules")
READERS = ("admin", "operator", "viewer")

_OWNER = {
    "plan": {"type": "string", "description": "a rate plan's name"},
    "switch": {"type": "string", "description": "a FreeSWITCH switch name (CDR switchname)"},
    "cucm_cluster": {"type": "string", "description": "a CUCM globalCallId_ClusterID"},
}
_RULE_FIELDS = {
    "strip": {"type": "string", "pattern": "^[+]?[0-9]{0,32}$", "examples": ["9011", "+"]},
    "add": {"type": "string", "pattern": "^[0-9]{0,32}$", "examples": ["52"]},
    "min_length": {"type": "integer", "minimum": 1, "maximum": 32, "default": 1},
    "max_length": {"type": "integer", "minimum": 1, "maximum": 32, "default": 32},
}
# the request shapes (OpenAPI); ``sidecar.services.number_rules`` reads these fields
RULE_BODY = {
    "type": "object",
    "required": ["direction"],
    "description": "exactly one of plan, switch, cucm_cluster",
    "properties": {
        **_OWNER,
        "direction": {"enum": ["callee", "caller"]},
        "position": {"type": "integer", "minimum": 0, "description": "default: last"},
        **_RULE_FIELDS,
    },
    "additionalProperties": False,
}
RULE_UPDATE = {"type": "object", "properties": _RULE_FIELDS, "additionalProperties": False}
assert set(RULE_BODY["properties"]) == number_rules.FIELDS  # type: ignore[call-overload]


def _query() -> dict[str, str]:
    return {k: v for k in (*_OWNER, "direction") if (v := request.args.get(k, ""))}


@bp.get("")
@require(*READERS)
def list_rules():  # type: ignore[no-untyped-def]
    return jsonify({"rules": number_rules.list_rules(get_conn(), _query())})


@bp.post("")
@require("admin")
def add_rule():  # type: ignore[no-untyped-def]
    return jsonify(number_rules.add_rule(get_conn(), g.actor, json_body())), 201


@bp.patch("/<int:rule_id>")
@require("admin")
def update_rule(rule_id: int):  # type: ignore[no-untyped-def]
    return jsonify(number_rules.update_rule(get_conn(), g.actor, rule_id, json_body()))


@bp.delete("/<int:rule_id>")
@require("admin")
def delete_rule(rule_id: int):  # type: ignore[no-untyped-def]
    number_rules.delete_rule(get_conn(), g.actor, rule_id)
    return "", 204


@bp.get("/normalize")
@require(*READERS)
def normalize():  # type: ignore[no-untyped-def]
    args = _query()
    return jsonify(
        number_rules.normalize(
            get_conn(),
            request.args.get("number", ""),
            args.get("direction", "callee"),
            plan=args.get("plan"),
            switch=args.get("switch"),
            cucm_cluster=args.get("cucm_cluster"),
        )
    )
