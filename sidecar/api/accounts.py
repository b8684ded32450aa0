"""Accounts: read, create, recharge."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, g, jsonify

from sidecar.api._request import json_body
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.money import parse_money
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import reservations as reservations_repo
from sidecar.services import accounts as accounts_service

bp = Blueprint("accounts", __name__, url_prefix="/v1/accounts")


def _money(body: dict[str, object], field: str, default: str) -> Decimal:
    try:
        return parse_money(body.get(field, default), field)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None


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
    anis = body.get("anis")
    if anis is not None and (
        not isinstance(anis, list) or not all(isinstance(a, str) and a for a in anis)
    ):
        raise ApiError(400, "invalid_request", "anis must be a list of strings")
    max_calls = body.get("max_calls")
    if max_calls is not None and (isinstance(max_calls, bool) or not isinstance(max_calls, int)):
        raise ApiError(400, "invalid_request", "max_calls must be an integer")
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
    )
    return jsonify(created), 201


@bp.post("/<number>/recharges")
@require("admin", "operator")
def recharge(number: str):  # type: ignore[no-untyped-def]
    body = json_body()
    amount = _money(body, "amount", "")
    result = accounts_service.recharge(
        get_conn(),
        actor=g.actor,
        number=number,
        amount=amount,
        note=str(body.get("note") or ""),
    )
    return jsonify(result), 201
