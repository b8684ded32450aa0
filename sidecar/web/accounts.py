"""Accounts: list/search, detail (balance, reservations, ledger), recharge form.

The recharge form carries the session's CSRF token and an idempotency key made when the
form is drawn, so a double submit or a browser retry recharges once (the same stored-key
rule as ``POST /v1/accounts/NUMBER/recharges``, under the same caller).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from flask import g, redirect, render_template, request

from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.money import parse_money
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import rate_admin
from sidecar.repo import reservations as reservations_repo
from sidecar.services import accounts as accounts_service
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, RECHARGERS, page

PAGE_SIZE = 25
LEDGER_ROWS = 50


@bp.get("/accounts")
@page(*READERS)
def accounts_page() -> Any:
    q = (request.args.get("q") or "").strip()[:64]
    status = request.args.get("status") or ""
    if status not in accounts_service.ACCOUNT_STATUSES:
        status = ""
    after = (request.args.get("after") or "")[:64] or None
    result = accounts_service.list_accounts(
        get_conn(), status=status or None, type_=None, plan=None, q=q or None, after=after,
        limit=PAGE_SIZE,
    )  # fmt: skip
    return render_template(
        "accounts.html",
        accounts=result["accounts"],
        next=result["next"],
        q=q,
        status=status,
        statuses=accounts_service.ACCOUNT_STATUSES,
        paged=after is not None,
    )


def _detail(number: str, *, error: str = "", amount: str = "", note: str = "") -> Any:
    conn = get_conn()
    row = accounts_repo.get(conn, number)
    if row is None:
        return render_template("error.html", message=f"There is no account {number}."), 404
    plan = rate_admin.get_plan(conn, row["plan"])
    return render_template(
        "account.html",
        account=accounts_service.summary(row),
        currency=plan["currency"] if plan else "",
        reservations=reservations_repo.open_for_account(conn, int(row["id"])),
        ledger=accounts_repo.ledger_of(conn, int(row["id"]), LEDGER_ROWS),
        error=error,
        amount=amount,
        note=note,
        done=request.args.get("done") == "recharged",
        replayed=request.args.get("replayed") == "1",
        idempotency_key=str(uuid.uuid4()),
    ), (400 if error else 200)


@bp.get("/accounts/<number>")
@page(*READERS)
def account_page(number: str) -> Any:
    return _detail(number)


@bp.post("/accounts/<number>/recharge")
@page(*RECHARGERS)
def recharge(number: str) -> Any:
    raw_amount = (request.form.get("amount") or "").strip()
    note = (request.form.get("note") or "").strip()
    key = request.form.get("idempotency_key") or ""
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        return _detail(number, error="The form is incomplete; reload the page.", amount=raw_amount)
    if len(note) > 500:
        return _detail(number, error="The note is longer than 500 characters.", amount=raw_amount)
    try:
        amount = parse_money(raw_amount, "amount")
    except ValueError as exc:
        return _detail(number, error=f"Amount: {exc}", amount=raw_amount, note=note)
    conn = get_conn()
    fingerprint = hashlib.sha256(
        f"web-recharge\x00{number}\x00{amount}\x00{note}".encode()
    ).hexdigest()
    target = f"/dashboard/accounts/{number}?done=recharged"
    try:
        stored = accounts_service.idempotent_replay(conn, g.actor, "web:" + key, fingerprint)
        if stored is not None:
            return redirect(target + "&replayed=1", code=303)
        result = accounts_service.recharge(
            conn, actor=g.actor, number=number, amount=amount, note=note
        )
    except ApiError as exc:
        if exc.status == 404:
            return render_template("error.html", message=exc.message), 404
        return _detail(number, error=exc.message, amount=raw_amount, note=note)
    accounts_service.idempotent_store(conn, g.actor, "web:" + key, 201, result)
    return redirect(target, code=303)
