"""POST /cucm/cdr: a CUCM CDR or CMR flat file, as the CDR Repository wrote it.

The file name comes in the ``X-Apolo-File-Name`` header or the ``name`` query parameter;
the body is the file. 200 only after the commit. A malformed file is refused with 400
naming the line, and nothing of it is written; the same file again answers 200 with
``duplicate: true`` and changes nothing.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify, request

from sidecar.api._request import catalog
from sidecar.auth import SWITCH, require
from sidecar.cucm.errors import CucmFileError
from sidecar.cucm.fac_code import FacKeyMissing
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.request_guard import body_limit
from sidecar.services.cucm_ingest import ingest_file
from sidecar.services.cucm_settings import load_cucm_settings

bp = Blueprint("cucm", __name__, url_prefix="/cucm")
log = logging.getLogger(__name__)
NAME_HEADER = "X-Apolo-File-Name"


@bp.post("/cdr")
@require(SWITCH, "admin")
@body_limit(lambda: load_cucm_settings().max_file_bytes)
def post_file():  # type: ignore[no-untyped-def]
    name = request.headers.get(NAME_HEADER) or request.args.get("name") or ""
    if not name:
        raise ApiError(
            400, "invalid_request", f"the file name is required ({NAME_HEADER} or ?name=)"
        )
    cfg = load_cucm_settings()
    data = request.get_data(cache=False)
    try:
        result = ingest_file(get_conn(), catalog(), cfg, name=name, data=data, actor=g.actor)
    except CucmFileError as exc:
        log.warning("rejected CUCM file %r: %s", name, exc)
        raise ApiError(
            400, "invalid_cucm_file", str(exc), {"file": name, "line": exc.line}
        ) from None
    except FacKeyMissing as exc:
        log.error("CUCM file %r refused: %s", name, exc)
        raise ApiError(503, "fac_key_missing", str(exc), {"file": name}) from None
    log.info(
        "CUCM file %s: %d rows, %d new%s",
        name,
        result.rows,
        result.new_rows,
        " (duplicate file)" if result.duplicate else "",
    )
    return jsonify(result.summary())
