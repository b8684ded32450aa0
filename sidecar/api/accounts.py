"""Accounts: list, read, create, update, suspend/reactivate, recharge (single and bulk).

Recharges take an optional ``Idempotency-Key`` header: the first request with a key does
the work and stores its answer in the same transaction; a retry with the same key and the
same request answers that stored body (``Idempotent-Replayed: true``) and moves no money;
the same key with a different request is a 409. Keys are scoped per caller.
"""

from __future__ import annotations

import hashlib
import json
import os
from decimal import Decimal
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.imports.recharges import RechargeFileError, RechargeLimits, parse_recharge_file
from sidecar.money import parse_money
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import reservations as reservations_repo
from sidecar.request_guard import body_limit
from sidecar.services import accounts as accounts_service

bp = Blueprint("accounts", __name__, url_prefix="/v1/accounts")


_UPDATABLE = {
    "name",
    "plan",
    "type",
    "status",
    "credit_limit",
    "max_calls",
    "low_balance_threshold",
    "anis",
    "max_call_cost",
    "sip_users",
}
_MAX_PAGE = 500


def _money(body: dict[str, object], field: str, default: str) -> Decimal:
    try:
        return parse_money(body.get(field, default), field)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None


def _optional_money(body: dict[str, Any], field: str) -> Decimal | None:
    return None if body.get(field) is None else _money(body, field, "")


def _anis(value: object) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(a, str) and a.strip() and len(a) <= 64 for a in value
    ):
        raise ApiError(400, "invalid_request", "anis must be a list of non-empty strings")
    return [a.strip() for a in value]


def _sip_users(value: object) -> list[str]:
    if (
        not isinstance(value, list)
        or len(value) > 100
        or not all(isinstance(u, str) for u in value)
    ):
        raise ApiError(400, "invalid_request", "sip_users must be a list of user@domain strings")
    return accounts_service.sip_users(value)


def _max_calls(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(400, "invalid_request", "max_calls must be an integer or null")
    return value


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise ApiError(
            400, "invalid_request", "Idempotency-Key must be 1-255 printable ASCII characters"
        )
    return key


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def _replayed(stored: tuple[int, Any]):  # type: ignore[no-untyped-def]
    response = jsonify(stored[1])
    response.status_code = stored[0]
    response.headers["Idempotent-Replayed"] = "true"
    return response


def recharge_limits() -> RechargeLimits:
    """From the environment on first use (tests may set ``app.extensions`` themselves)."""
    found: RechargeLimits | None = current_app.extensions.get("apolo_recharge_limits")
    if found is None:
        found = RechargeLimits.from_env(os.environ)
        current_app.extensions["apolo_recharge_limits"] = found
    return found


@bp.get("")
@require("admin", "operator", "viewer")
def list_accounts():  # type: ignore[no-untyped-def]
    args = request.args
    try:
        limit = int(args.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "invalid_request", "limit must be an integer") from None
    if not 1 <= limit <= _MAX_PAGE:
        raise ApiError(400, "invalid_request", f"limit must be between 1 and {_MAX_PAGE}")
    page = accounts_service.list_accounts(
        get_conn(),
        status=args.get("status") or None,
        type_=args.get("type") or None,
        plan=args.get("plan") or None,
        q=(args.get("q") or "").strip() or None,
        after=args.get("after") or None,
        limit=limit,
    )
    return jsonify(page)


@bp.get("/<number>")
@require("admin", "operator", "viewer")
def get_account(number: str):  # type: ignore[no-untyped-def]
    conn = get_conn()
    row = accounts_repo.get(conn, number)
    if row is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    result = accounts_service.summary(row)
    result["reservations"] = [
        {**r, "amount": str(r["amount"])}
        for r in reservations_repo.open_for_account(conn, int(row["id"]))
    ]
    result["ledger"] = [
        {**r, "amount": str(r["amount"]), "balance_after": str(r["balance_after"])}
        for r in accounts_repo.ledger_of(conn, int(row["id"]))
    ]
    return jsonify(result)


@bp.post("")
@require("admin")
def create_account():  # type: ignore[no-untyped-def]
    body = json_body()
    anis = None if body.get("anis") is None else _anis(body["anis"])
    max_calls = _max_calls(body.get("max_calls"))
    for field in ("number", "plan", "type"):
        if not isinstance(body.get(field), str):
            raise ApiError(400, "invalid_request", f"{field} is required (a string)")
    created = accounts_service.create_account(
        get_conn(),
        actor=g.actor,
        number=str(body["number"]),
        plan=str(body["plan"]),
        type_=str(body["type"]),
        balance=_money(body, "balance", "0"),
        credit_limit=_money(body, "credit_limit", "0"),
        anis=anis,
        max_calls=max_calls,
        name=str(body.get("name") or ""),
        low_balance_threshold=_optional_money(body, "low_balance_threshold"),
        sip_user_list=None if body.get("sip_users") is None else _sip_users(body["sip_users"]),
    )
    return jsonify(created), 201


@bp.patch("/<number>")
@require("admin")
def update_account(number: str):  # type: ignore[no-untyped-def]
    body = json_body()
    unknown = sorted(set(body) - _UPDATABLE)
    if unknown:
        raise ApiError(400, "invalid_request", "unknown or read-only fields", {"fields": unknown})
    if not body:
        raise ApiError(400, "invalid_request", "nothing to update")
    changes: dict[str, Any] = {}
    for field in ("name", "plan", "type", "status"):
        if field in body:
            if not isinstance(body[field], str) or len(body[field]) > 200:
                raise ApiError(400, "invalid_request", f"{field} must be a string")
            changes[field] = body[field].strip() if field == "name" else body[field]
    if "credit_limit" in body:
        changes["credit_limit"] = _money(body, "credit_limit", "")
    if "low_balance_threshold" in body:
        changes["low_balance_threshold"] = _optional_money(body, "low_balance_threshold")
    if "max_calls" in body:
        changes["max_calls"] = _max_calls(body["max_calls"])
    if "anis" in body:
        changes["anis"] = _anis(body["anis"])
    if "max_call_cost" in body:
        changes["max_call_cost"] = _optional_money(body, "max_call_cost")
    if "sip_users" in body:
        changes["sip_users"] = _sip_users(body["sip_users"])
    result = accounts_service.update_account(
        get_conn(), actor=g.actor, number=number, changes=changes
    )
    return jsonify(result)


@bp.post("/<number>/suspend")
@require("admin")
def suspend(number: str):  # type: ignore[no-untyped-def]
    return jsonify(
        accounts_service.set_status(get_conn(), actor=g.actor, number=number, status="suspended")
    )


@bp.post("/<number>/reactivate")
@require("admin")
def reactivate(number: str):  # type: ignore[no-untyped-def]
    return jsonify(
        accounts_service.set_status(get_conn(), actor=g.actor, number=number, status="active")
    )


@bp.post("/<number>/recharges")
@require("admin", "operator")
def recharge(number: str):  # type: ignore[no-untyped-def]
    body = json_body()
    conn = get_conn()
    key = _idempotency_key()
    if key is not None:
        canonical = json.dumps(body, sort_keys=True, default=str)
        stored = accounts_service.idempotent_replay(
            conn, g.actor, key, _fingerprint("POST", request.path, canonical)
        )
        if stored is not None:
            return _replayed(stored)
    amount = _money(body, "amount", "")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise ApiError(400, "invalid_request", "note must be a string of at most 500 characters")
    result = accounts_service.recharge(
        conn, actor=g.actor, number=number, amount=amount, note=note or ""
    )
    if key is not None:
        accounts_service.idempotent_store(conn, g.actor, key, 201, result)
    return jsonify(result), 201


MULTIPART_ALLOWANCE = 65536  # a multipart upload's framing around the file


def _upload() -> tuple[bytes, str]:
    """The uploaded file's bytes (multipart field ``file``, or the raw body) and its name;
    one byte more than the limit at most, which the parser then refuses as too large."""
    limit = recharge_limits().max_bytes
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "invalid_request", "send the file in the form field 'file'")
        return upload.stream.read(limit + 1), upload.filename or ""
    return request.get_data(cache=False)[: limit + 1], ""


@bp.post("/bulk-recharges")
@require("admin", "operator")
@body_limit(lambda: recharge_limits().max_bytes + MULTIPART_ALLOWANCE)
def bulk_recharge():  # type: ignore[no-untyped-def]
    """CSV or XLSX of account (or extension) + amount [+ note]; ``?dry_run=true`` previews."""
    data, filename = _upload()
    apply = request.args.get("dry_run", "false").lower() not in ("1", "true", "yes")
    note = request.args.get("note") or request.form.get("note") or f"bulk recharge {filename}"
    if len(note) > 500:
        raise ApiError(400, "invalid_request", "note must be at most 500 characters")
    digest = hashlib.sha256(data).hexdigest()
    conn = get_conn()
    key = _idempotency_key() if apply else None
    if key is not None:
        stored = accounts_service.idempotent_replay(
            conn, g.actor, key, _fingerprint("POST", request.path, digest, note.strip())
        )
        if stored is not None:
            return _replayed(stored)
    try:
        parsed = parse_recharge_file(data, recharge_limits())
    except RechargeFileError as exc:
        raise ApiError(400, "invalid_file", str(exc)) from None
    result = accounts_service.bulk_recharge(
        conn, actor=g.actor, parsed=parsed, note=note.strip(), file_sha256=digest, apply=apply
    )
    status = 201 if apply else 200
    if key is not None:
        accounts_service.idempotent_store(conn, g.actor, key, status, result)
    return jsonify(result), status
