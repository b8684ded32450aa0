"""POST /freeswitch/dialplan: the mod_xml_curl dialplan binding.

Authorizes the call like the mod_python3 hook and answers a dialplan that sets the
same apolo_* variables and either bridges with a scheduled hangup or rejects.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from sidecar.api._request import settings
from sidecar.api.authorize import run_authorization
from sidecar.auth import SWITCH, require
from sidecar.errors import ApiError
from sidecar.freeswitch import channel_vars as cv
from sidecar.freeswitch.commands import execute_on_answer_sched_hangup
from sidecar.freeswitch.xml_curl import (
    bridge_document,
    not_found_document,
    parse_dialplan_request,
    reject_document,
)
from sidecar.rating import normalize_number
from sidecar.services.authorize import AuthorizeRequest, AuthorizeResult

bp = Blueprint("freeswitch_dialplan", __name__, url_prefix="/freeswitch")


def _xml(doc: bytes) -> Response:
    return Response(doc, mimetype="text/xml")


def channel_variables(result: AuthorizeResult) -> dict[str, str]:
    return {
        cv.APOLO_RESULT: cv.APOLO_AUTHORIZED_VALUE if result.authorized else "denied",
        cv.APOLO_REASON: result.reason,
        cv.APOLO_ACCOUNT: result.account or "",
        cv.APOLO_MAX_DURATION: str(result.max_duration),
        cv.APOLO_RATE: str(result.rate.rate_per_minute) if result.rate else "",
        cv.APOLO_RESERVATION_ID: str(result.reservation_id or ""),
    }


@bp.post("/dialplan")
@require(SWITCH)
def dialplan():  # type: ignore[no-untyped-def]
    cfg = settings()
    try:
        call = parse_dialplan_request(request.form)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    if call.section != "dialplan" or call.context not in cfg.dialplan_contexts:
        return _xml(not_found_document())
    result = run_authorization(
        AuthorizeRequest(
            uuid=call.uuid,
            caller=call.caller,
            callee=call.callee,
            facts=call.facts,
            switch=request.form.get(cv.XC_SWITCHNAME) or None,
        )
    )
    variables = channel_variables(result)
    if not result.authorized:
        return _xml(reject_document(call.context, cfg.reject_cause, variables))
    digits = normalize_number(call.callee)
    target = cfg.bridge_template.format(callee=digits, destination=result.destination or digits)
    on_answer = execute_on_answer_sched_hangup(result.max_duration, cfg.allotted_cause)
    return _xml(bridge_document(call.context, variables, on_answer, target))
