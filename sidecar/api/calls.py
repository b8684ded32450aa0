"""Live calls, as Redis holds them (``?node=host:port`` narrows to one switch)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from sidecar.api._request import redis_client, settings
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.repo import reservations as reservations_repo
from sidecar.services import live_calls

bp = Blueprint("calls", __name__, url_prefix="/v1/calls")


@bp.get("/active")
@require("admin", "operator", "viewer")
def active_calls():  # type: ignore[no-untyped-def]
    node = request.args.get("node") or None
    if node is not None and (len(node) > 200 or not node.isprintable()):
        raise ApiError(400, "invalid_request", "node must be host:port")
    try:
        calls = current_calls(node)
    except Exception:
        raise ApiError(503, "live_state_unavailable", "Redis is unavailable") from None
    return jsonify({"calls": calls, "count": len(calls)})


def current_calls(node: str | None = None) -> list[dict[str, str]]:
    """The live table, refilled from PostgreSQL first if Redis lost its data."""
    client = redis_client()
    cfg = settings()
    live_calls.rebuild_if_lost(
        client,
        lambda: reservations_repo.open_calls(get_conn()),
        cfg.reservation_seconds + cfg.reservation_grace_seconds,
    )
    return live_calls.active(client, node)
