"""POST /v1/authorize: the call-admission question FreeSWITCH asks before bridging."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify

from sidecar.api._request import catalog, json_body, redis_client, settings
from sidecar.auth import SWITCH, require
from sidecar.db import after_commit, get_conn, statements_are_atomic
from sidecar.errors import ApiError
from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES, caller_facts
from sidecar.metrics import AUTHORIZATIONS
from sidecar.services import live_calls
from sidecar.services.authorize import AuthorizeRequest, AuthorizeResult, authorize

bp = Blueprint("authorize", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)
MAX_VARIABLES = 64
MAX_VARIABLE_LENGTH = 512


def _variables(raw: object) -> dict[str, str]:
    """The hook's channel variables: only the identity ones are kept (others are ignored)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_VARIABLES:
        raise ApiError(
            400, "invalid_request", f"variables must be an object of at most {MAX_VARIABLES}"
        )
    kept = {}
    for name, value in raw.items():
        if not isinstance(value, str) or len(value) > MAX_VARIABLE_LENGTH:
            raise ApiError(
                400, "invalid_request", f"variables.{str(name)[:64]} must be a short string"
            )
        if name in IDENTITY_VARIABLES:
            kept[name] = value
    return kept


def parse_request(body: dict[str, object]) -> AuthorizeRequest:
    """The call and the facts about its caller; who pays is the sidecar's decision (an
    ``account`` field, which older hooks sent, is not read)."""
    values = {}
    for field in ("uuid", "caller", "callee"):
        value = body.get(field)
        if not isinstance(value, str) or not value.strip() or len(value) > 128:
            raise ApiError(400, "invalid_request", f"{field} is required (a string)")
        values[field] = value.strip()
    facts = caller_facts(_variables(body.get("variables")), values["caller"])
    return AuthorizeRequest(values["uuid"], values["caller"], values["callee"], facts)


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
    by = result.identified_by.describe() if result.identified_by else "-"
    log.info("authorize %s %s->%s: %s (%s)", req.uuid, req.caller, req.callee, result.reason, by)
    AUTHORIZATIONS.labels("authorized" if result.authorized else "denied", result.reason).inc()
    return result


@bp.post("/authorize")
@require("admin", SWITCH)
def post_authorize():  # type: ignore[no-untyped-def]
    return jsonify(run_authorization(parse_request(json_body())).as_json())
