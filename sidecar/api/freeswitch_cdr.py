"""POST /freeswitch/cdr: mod_xml_cdr posts, in every encoding FreeSWITCH sends.

2xx only after the commit: the CDR goes through the worker's group-commit settler
(``services.cdr_batcher``), which answers once the transaction holding it has committed;
any failure is non-2xx so FreeSWITCH retries, then spools to err-log-dir.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request

from sidecar.api._request import cdr_batcher, settings
from sidecar.auth import SWITCH, require
from sidecar.db import after_commit
from sidecar.errors import ApiError
from sidecar.freeswitch.xml_cdr import decode_post, parse_cdr
from sidecar.metrics import CDRS
from sidecar.request_guard import body_limit

bp = Blueprint("freeswitch_cdr", __name__, url_prefix="/freeswitch")
log = logging.getLogger(__name__)


@bp.post("/cdr")
@require(SWITCH)
@body_limit(lambda: 3 * settings().max_document_bytes + 16)  # encode=true triples the XML
def post_cdr():  # type: ignore[no-untyped-def]
    cfg = settings()
    body = request.get_data(cache=False)
    try:
        post = decode_post(request.content_type or "", body, request.args.get("uuid"))
        record = parse_cdr(post.xml, a_leg_hint=post.a_leg_hint, max_bytes=cfg.max_document_bytes)
    except ValueError as exc:  # decode, hostile/malformed XML, invalid CDR values
        log.warning("rejected CDR (uuid=%s): %s", request.args.get("uuid"), exc)
        CDRS.labels("invalid", "false").inc()
        raise ApiError(400, "invalid_cdr", str(exc)) from None
    if post.uuid_hint and post.uuid_hint != record.uuid:
        raise ApiError(
            400,
            "invalid_cdr",
            "the uuid query parameter does not match the CDR's uuid",
            {"query": post.uuid_hint, "document": record.uuid},
        )
    raw = post.xml.decode("utf-8") if cfg.keep_raw_cdr else None
    # committed when it returns, the call gone from the live table (sidecar.app)
    result = cdr_batcher().ingest(record, raw)
    counted = CDRS.labels(result.billing_status, "true" if result.duplicate else "false")
    after_commit(counted.inc)
    log.info(
        "CDR %s leg %s: %s %s%s",
        record.uuid,
        record.leg,
        result.billing_status,
        result.cost,
        " (duplicate)" if result.duplicate else "",
    )
    return jsonify(
        {
            "uuid": result.uuid,
            "cdr_id": result.cdr_id,
            "duplicate": result.duplicate,
            "billing_status": result.billing_status,
            "cost": str(result.cost),
            "account": result.account,
        }
    )
