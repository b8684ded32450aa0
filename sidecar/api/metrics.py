"""GET /metrics: Prometheus text format, open like /healthz (it carries no secrets)."""

from __future__ import annotations

from flask import Blueprint, Response

from sidecar.metrics import CONTENT_TYPE_LATEST, exposition

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])
