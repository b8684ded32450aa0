"""POST /v1/authorize: the call-admission question FreeSWITCH asks before bridging."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request

from sidecar.api._request import catalog, json_object, redis_client, settings
from sidecar.auth import SWITCH, require
from sidecar.db import after_commit, get_conn, statements_are_atomic
from sidecar.errors import ApiError
from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES, caller_facts
from sidecar.metrics import AUTHORIZATIONS
from sidecar.request_guard import text_problem
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
        if not isinstance(value, str):
            raise ApiError(400, "invalid_request", f"variables.{str(name)[:64]} must be a string")
        if name in IDENTITY_VARIABLES:
            kept[name] = value
    return kept


MAX_FIELD = 128
INVALID_REQUEST = "invalid_request"  # the denial reason for fields no call can have


class Unusable(Exception):
    """A field FreeSWITCH sent that no call can have; answered with a denial."""

    def __init__(self, uuid: str) -> None:
        super().__init__(uuid)
        self.uuid = uuid


def parse_request(body: dict[str, object]) -> AuthorizeRequest:
    """The call and the facts about its caller, from a JSON object with string fields (a
    missing field or a field of another type is a 400: the hook always sends strings). Who pays
    is the sidecar's decision: an ``account`` field, which older hooks sent, is not read.

    A string no call can have (empty, over 128 characters, holding a NUL byte, a lone
    surrogate or bytes that are not UTF-8), in the call's fields or its variables, raises
    :class:`Unusable`: the caller answers a denial, because the hook lets a call through on a
    4xx when it is configured to fail open, and such values can come from the caller's own
    signalling."""
    values: dict[str, str] = {}
    for field in ("uuid", "caller", "callee"):
        value = body.get(field)
        if not isinstance(value, str):
            raise ApiError(400, "invalid_request", f"{field} is required (a string)")
        values[field] = value
    variables = _variables(body.get("variables"))
    for value in values.values():
        if len(value) > MAX_FIELD or text_problem(value) is not None:
            raise Unusable(values["uuid"])
    if not all(v.strip() for v in values.values()):
        raise Unusable(values["uuid"])
    # headers the caller wrote may be long or hold anything: a denial, never a 4xx
    if any(len(v) > MAX_VARIABLE_LENGTH or text_problem(v) for v in variables.values()):
        raise Unusable(values["uuid"])
    switch = body.get("switch")
    if switch is not None and (not isinstance(switch, str) or len(switch) > 200):
        raise ApiError(400, "invalid_request", "switch must be a string (the switch name)")
    if switch is not None and text_problem(switch) is not None:
        raise Unusable(values["uuid"])
    cleaned = {k: v.strip() for k, v in values.items()}
    facts = caller_facts(variables, cleaned["caller"])
    return AuthorizeRequest(
        cleaned["uuid"], cleaned["caller"], cleaned["callee"], facts,
        switch=(switch or "").strip() or None,
    )  # fmt: skip


def denial(uuid: str) -> dict[str, object]:
    """A clean "no" for a request no call can make, echoing the uuid the hook checks."""
    AUTHORIZATIONS.labels("denied", INVALID_REQUEST).inc()
    return AuthorizeResult(False, INVALID_REQUEST, uuid).as_json()


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
    raw = request.get_data(cache=False)
    # bytes that are not UTF-8 inside a string (the Lua hook passes a caller's raw bytes on)
    # make that field unusable, not the request unreadable
    readable = raw.decode("utf-8", "replace").encode("utf-8")
    try:
        req = parse_request(json_object(readable, check_text=False))
        if readable != raw:
            raise Unusable(req.uuid)
    except Unusable as exc:
        log.warning("authorize %r: unusable field; denied", exc.uuid[:80])
        return jsonify(denial(exc.uuid))
    return jsonify(run_authorization(req).as_json())
