"""Health check: no authentication; says what is degraded."""

from __future__ import annotations

import logging

import psycopg
from flask import Blueprint, jsonify

from sidecar.api._request import catalog, redis_client, settings
from sidecar.db import settings_pool

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def _postgresql_up() -> bool:
    try:
        with settings_pool(settings()).connection(timeout=0.3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:
        pooled = exc
    # the pool may still be replacing connections a PostgreSQL restart broke (it backs off
    # between attempts): ask the server directly, so health follows PostgreSQL itself
    try:
        with psycopg.connect(settings().database_url, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:
        log.warning("healthz: PostgreSQL: %s (pool: %s)", exc, pooled)
        return False


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    checks: dict[str, str] = {"postgresql": "ok" if _postgresql_up() else "down"}
    try:
        redis_client().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("healthz: Redis: %s", exc)
        checks["redis"] = "down"
    checks["rate_watcher"] = "ok" if catalog().healthy else "stale"
    if checks["postgresql"] != "ok":
        status, code = "down", 503
    elif "ok" != checks["redis"] or checks["rate_watcher"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return jsonify({"status": status, "checks": checks}), code
