"""POST /v1/authorize: the call-admission question FreeSWITCH asks before bridging."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify

from sidecar.api._request import catalog, json_body, redis_client, settings
from sidecar.auth import SWITCH, require
from sidecar.db import after_commit, get_conn, statements_are_atomic
from sidecar.errors import ApiError
from sidecar.metrics import AUTHORIZATIONS
from sidecar.services import live_calls
from sidecar.services.authorize import AuthorizeRequest, AuthorizeResult, authorize

bp = Blueprint("authorize", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)


def parse_request(body: dict[str, object]) -> AuthorizeRequest:
    values = {}
    for field in ("uuid", "caller", "callee"):
        value = body.get(field)
        if not isinstance(value, str) or not value.strip() or len(value) > 128:
            raise ApiError(400, "invalid_request", f"{field} is required (a string)")
        values[field] = value.strip()
    account = body.get("account")
    if account is not None and (not isinstance(account, str) or len(account) > 128):
        raise ApiError(400, "invalid_request", "account must be a string")
    switch = body.get("switch")
    if switch is not None and (not isinstance(switch, str) or len(switch) > 200):
        raise ApiError(400, "invalid_request", "switch must be a string (the switch name)")
    return AuthorizeRequest(
        account=(account or "").strip() or None, switch=(switch or "").strip() or None, **values
    )


def run_authorization(req: AuthorizeRequest) -> AuthorizeResult:
    """Authorize; live state goes to Redis once the reservation is committed.

    The reservation is one atomic statement (``apolo_reserve()``), so the request runs in
    autocommit and spends no round trips on BEGIN and COMMIT.
    """
    statements_are_atomic()
    result = authorize(
        get_conn(),
        catalog(),
        settings(),
        req,
        datetime.now(UTC),
        current_app.extensions["apolo_accounts"],
    )
    if result.authorized:
        state = {
            "uuid": result.uuid,
            "account": result.account or "",
            "caller": req.caller,
            "callee": req.callee,
            "reservation_id": result.reservation_id,
            "reserved": result.reserved,
            "max_duration": result.max_duration,
            "rate_per_minute": result.rate.rate_per_minute if result.rate else "",
        }
        ttl = settings().reservation_seconds + settings().reservation_grace_seconds

        def _publish() -> None:
            live_calls.record_authorized(redis_client(), state, ttl)

        after_commit(_publish)
    log.info("authorize %s %s->%s: %s", req.uuid, req.caller, req.callee, result.reason)
    AUTHORIZATIONS.labels("authorized" if result.authorized else "denied", result.reason).inc()
    return result


@bp.post("/authorize")
@require("admin", SWITCH)
def post_authorize():  # type: ignore[no-untyped-def]
    return jsonify(run_authorization(parse_request(json_body())).as_json())
