"""Account operations shared by the admin API and the CLI (both audited)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from sidecar.errors import ApiError
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import rates as rates_repo

ACCOUNT_TYPES = ("prepaid", "postpaid")


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """An account as the API shows it: money as decimal strings."""
    credit = Decimal(row["credit_limit"]) if row["type"] == "postpaid" else Decimal(0)
    available = Decimal(row["balance"]) + credit - Decimal(row["reserved"])
    return {
        "number": row["number"],
        "name": row["name"],
        "plan": row["plan"],
        "type": row["type"],
        "status": row["status"],
        "balance": str(row["balance"]),
        "credit_limit": str(row["credit_limit"]),
        "reserved": str(row["reserved"]),
        "available": str(available),
        "active_calls": row["active_calls"],
        "max_calls": row["max_calls"],
        "anis": row.get("anis", []),
    }


def create_account(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    number: str,
    plan: str,
    type_: str,
    balance: Decimal,
    credit_limit: Decimal = Decimal(0),
    anis: list[str] | None = None,
    max_calls: int | None = None,
    name: str = "",
) -> dict[str, Any]:
    if type_ not in ACCOUNT_TYPES:
        raise ApiError(400, "invalid_request", f"type must be one of {', '.join(ACCOUNT_TYPES)}")
    if not number.strip():
        raise ApiError(400, "invalid_request", "number is required")
    if max_calls is not None and max_calls <= 0:
        raise ApiError(400, "invalid_request", "max_calls must be positive")
    plan_id = rates_repo.plan_id_by_name(conn, plan)
    if plan_id is None:
        raise ApiError(404, "plan_not_found", f"no rate plan named {plan!r}")
    if accounts_repo.number_exists(conn, number):
        raise ApiError(409, "account_exists", f"account {number} already exists")
    anis = sorted(set(anis or [number]))
    taken = accounts_repo.taken_anis(conn, anis)
    if taken:
        raise ApiError(409, "ani_taken", "ANI already belongs to another account", {"anis": taken})
    account_id = accounts_repo.create(
        conn,
        number=number,
        name=name,
        plan_id=plan_id,
        type_=type_,
        credit_limit=credit_limit,
        max_calls=max_calls,
        anis=anis,
    )
    if balance != 0:
        accounts_repo.move_balance(
            conn, account_id, balance, kind="initial", actor=actor, note="opening balance"
        )
    created = accounts_repo.get(conn, number)
    assert created is not None
    result = summary(created)
    audit.record(conn, actor, "account.create", f"account:{number}", None, result)
    return result


def recharge(
    conn: psycopg.Connection[Any], *, actor: str, number: str, amount: Decimal, note: str = ""
) -> dict[str, Any]:
    if amount <= 0:
        raise ApiError(400, "invalid_request", "amount must be positive")
    before = accounts_repo.get(conn, number, lock=True)
    if before is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    accounts_repo.move_balance(
        conn, int(before["id"]), amount, kind="recharge", actor=actor, note=note
    )
    after = accounts_repo.get(conn, number)
    assert after is not None
    result = summary(after)
    audit.record(conn, actor, "account.recharge", f"account:{number}", summary(before), result)
    return result
