"""Live calls, as Redis holds them (``?node=host:port`` narrows to one switch)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from sidecar.api._request import redis_client
from sidecar.auth import require
from sidecar.errors import ApiError

bp = Blueprint("calls", __name__, url_prefix="/v1/calls")


@bp.get("/active")
@require("admin", "operator", "viewer")
def active_calls():  # type: ignore[no-untyped-def]
    from sidecar.services import live_calls

    node = request.args.get("node") or None
    if node is not None and (len(node) > 200 or not node.isprintable()):
        raise ApiError(400, "invalid_request", "node must be host:port")
    try:
        calls = live_calls.active(redis_client(), node)
    except Exception:
        raise ApiError(503, "live_state_unavailable", "Redis is unavailable") from None
    return jsonify({"calls": calls, "count": len(calls)})
