"""Forced Authorization Codes: /v1/fac (admin only, audited; codes never shown in clear)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.services import cucm_fac
from sidecar.services.cucm_settings import load_cucm_settings

bp = Blueprint("fac", __name__, url_prefix="/v1/fac")


@bp.get("")
@require("admin")
def list_fac():  # type: ignore[no-untyped-def]
    return jsonify({"fac": cucm_fac.list_codes(get_conn(), request.args.get("account"))})


@bp.post("")
@require("admin")
def create_fac():  # type: ignore[no-untyped-def]
    body = json_body()
    created = cucm_fac.create(
        get_conn(),
        load_cucm_settings(),
        actor=g.actor,
        code=body.get("code"),
        name=body.get("name"),
        level=body.get("level", 0),
        account=body.get("account"),
    )
    return jsonify(created), 201


@bp.get("/<int:fac_id>")
@require("admin")
def get_fac(fac_id: int):  # type: ignore[no-untyped-def]
    return jsonify(cucm_fac.get(get_conn(), fac_id))


@bp.patch("/<int:fac_id>")
@require("admin")
def update_fac(fac_id: int):  # type: ignore[no-untyped-def]
    return jsonify(cucm_fac.update(get_conn(), actor=g.actor, fac_id=fac_id, changes=json_body()))


@bp.delete("/<int:fac_id>")
@require("admin")
def delete_fac(fac_id: int):  # type: ignore[no-untyped-def]
    return jsonify(cucm_fac.delete(get_conn(), actor=g.actor, fac_id=fac_id))
