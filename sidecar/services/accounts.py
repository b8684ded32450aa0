"""Account operations shared by the admin API and the CLI (both audited)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg

from sidecar.errors import ApiError
from sidecar.identity import parse_sip_user
from sidecar.imports.recharges import ParsedFile, RowError
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import caller_identity as identity_repo
from sidecar.repo import control as control_repo
from sidecar.repo import idempotency as idempotency_repo
from sidecar.repo import rates as rates_repo

ACCOUNT_TYPES = ("prepaid", "postpaid")
ACCOUNT_STATUSES = ("active", "suspended", "closed")
# balances are NUMERIC(18,4): 14 integer digits; a larger amount is refused, not overflowed
MAX_AMOUNT = Decimal("99999999999999.9999")


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
        "low_balance_threshold": _money_or_none(row.get("low_balance_threshold")),
        "anis": row.get("anis", []),
        "sip_users": row.get("sip_users", []),
        **(
            {"max_call_cost": _money_or_none(row["max_call_cost"])}
            if "max_call_cost" in row
            else {}
        ),
    }


def _one_of(field: str, values: tuple[str, ...]) -> str:
    return f"{field} must be one of {', '.join(values)}"


def _money_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def sip_users(values: list[str]) -> list[str]:
    """``user@domain`` values, checked and in the form the identity rule compares."""
    parsed = []
    for value in values:
        key = parse_sip_user(value) if isinstance(value, str) else None
        if key is None:
            raise ApiError(
                400,
                "invalid_request",
                f"{str(value)[:80]!r} is not a SIP user: user@domain, e.g. 1001@pbx.example",
            )
        parsed.append(key)
    return sorted(set(parsed))


def _set_sip_users(conn: psycopg.Connection[Any], account_id: int, users: list[str]) -> None:
    """The account's SIP users become exactly ``users``; one of another account is a 409."""
    taken = identity_repo.sip_users_taken_by_others(conn, account_id, users)
    if not taken:
        try:
            with conn.transaction():  # a savepoint: a concurrent twin is a 409, not a 500
                identity_repo.replace_sip_users(conn, account_id, users)
            return
        except psycopg.errors.UniqueViolation:
            taken = identity_repo.sip_users_taken_by_others(conn, account_id, users)
    raise ApiError(
        409,
        "sip_user_taken",
        f"SIP user {', '.join(taken)} already belongs to another account",
        {"sip_users": taken},
    )


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
    low_balance_threshold: Decimal | None = None,
    sip_user_list: list[str] | None = None,
) -> dict[str, Any]:
    if type_ not in ACCOUNT_TYPES:
        raise ApiError(400, "invalid_request", _one_of("type", ACCOUNT_TYPES))
    if not number.strip():
        raise ApiError(400, "invalid_request", "number is required")
    if max_calls is not None and max_calls <= 0:
        raise ApiError(400, "invalid_request", "max_calls must be positive")
    for field, value in (
        ("balance", balance),
        ("credit_limit", credit_limit),
        ("low_balance_threshold", low_balance_threshold),
    ):
        if value is not None and abs(value) > MAX_AMOUNT:
            raise ApiError(400, "invalid_request", f"{field} is too large")
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
    if low_balance_threshold is not None:
        accounts_repo.update_fields(
            conn, account_id, {"low_balance_threshold": low_balance_threshold}
        )
    if sip_user_list:
        _set_sip_users(conn, account_id, sip_users(sip_user_list))
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
    if amount > MAX_AMOUNT:
        raise ApiError(400, "invalid_request", f"amount is too large (at most {MAX_AMOUNT})")
    before = accounts_repo.get(conn, number, lock=True)
    if before is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    _check_balance_after(number, Decimal(before["balance"]), amount)
    accounts_repo.move_balance(
        conn, int(before["id"]), amount, kind="recharge", actor=actor, note=note
    )
    after = accounts_repo.get(conn, number)
    assert after is not None
    result = summary(after)
    audit.record(conn, actor, "account.recharge", f"account:{number}", summary(before), result)
    return result


def _balance_too_large(number: str, before: Decimal, amount: Decimal) -> str | None:
    after = before + amount
    if after <= MAX_AMOUNT:
        return None
    return (
        f"recharging {amount} would bring the balance of {number} from {before} to {after},"
        f" above the largest balance, {MAX_AMOUNT}"
    )


def _check_balance_after(number: str, before: Decimal, amount: Decimal) -> None:
    """A balance is NUMERIC(18,4): a recharge that would overflow it is refused, not failed."""
    problem = _balance_too_large(number, before, amount)
    if problem is not None:
        raise ApiError(400, "balance_too_large", problem, {"max_balance": str(MAX_AMOUNT)})


# ------------------------------------------------------------------ admin API


def list_accounts(
    conn: psycopg.Connection[Any],
    *,
    status: str | None,
    type_: str | None,
    plan: str | None,
    q: str | None,
    after: str | None,
    limit: int,
) -> dict[str, Any]:
    """One page of accounts by number; ``next`` is the cursor of the following page."""
    if status is not None and status not in ACCOUNT_STATUSES:
        raise ApiError(400, "invalid_request", _one_of("status", ACCOUNT_STATUSES))
    if type_ is not None and type_ not in ACCOUNT_TYPES:
        raise ApiError(400, "invalid_request", _one_of("type", ACCOUNT_TYPES))
    rows = accounts_repo.search(
        conn, status=status, type_=type_, plan=plan, q=q, after=after, limit=limit + 1
    )
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "accounts": [summary(r) for r in page],
        "next": page[-1]["number"] if more and page else None,
    }


def update_account(
    conn: psycopg.Connection[Any], *, actor: str, number: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply validated ``changes`` (API field names) to an account; audited before/after."""
    before = accounts_repo.get(conn, number, lock=True)
    if before is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    account_id = int(before["id"])
    columns: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "plan":
            plan_id = rates_repo.plan_id_by_name(conn, value)
            if plan_id is None:
                raise ApiError(404, "plan_not_found", f"no rate plan named {value!r}")
            columns["plan_id"] = plan_id
        elif field == "type" and value not in ACCOUNT_TYPES:
            raise ApiError(400, "invalid_request", _one_of("type", ACCOUNT_TYPES))
        elif field == "status" and value not in ACCOUNT_STATUSES:
            raise ApiError(400, "invalid_request", _one_of("status", ACCOUNT_STATUSES))
        elif field == "max_calls" and value is not None and value <= 0:
            raise ApiError(400, "invalid_request", "max_calls must be positive")
        elif field == "max_call_cost" and value is not None and not 0 < value <= MAX_AMOUNT:
            raise ApiError(400, "invalid_request", "max_call_cost must be positive or null")
        elif (
            field in ("credit_limit", "low_balance_threshold")
            and value is not None
            and (value > MAX_AMOUNT)
        ):
            raise ApiError(400, "invalid_request", f"{field} is too large")
        if field not in ("plan", "anis", "max_call_cost", "sip_users"):
            columns[field] = value
    if "anis" in changes:
        anis = sorted(set(changes["anis"]))
        taken = accounts_repo.anis_taken_by_others(conn, account_id, anis)
        if taken:
            raise ApiError(
                409, "ani_taken", "ANI already belongs to another account", {"anis": taken}
            )
        accounts_repo.replace_anis(conn, account_id, anis)
    if "sip_users" in changes:
        _set_sip_users(conn, account_id, sip_users(changes["sip_users"]))
    accounts_repo.update_fields(conn, account_id, columns)
    if "max_call_cost" in changes:
        before["max_call_cost"] = control_repo.account_call_cap(conn, account_id)
        control_repo.set_account_call_cap(conn, account_id, changes["max_call_cost"])
    after = accounts_repo.get(conn, number)
    assert after is not None
    if "max_call_cost" in changes:
        after["max_call_cost"] = control_repo.account_call_cap(conn, account_id)
    result = summary(after)
    audit.record(conn, actor, "account.update", f"account:{number}", summary(before), result)
    return result


def set_status(
    conn: psycopg.Connection[Any], *, actor: str, number: str, status: str
) -> dict[str, Any]:
    """Suspend (``suspended``) or reactivate (``active``); a closed account stays closed."""
    before = accounts_repo.get(conn, number, lock=True)
    if before is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    if before["status"] == "closed":
        raise ApiError(409, "account_closed", f"account {number} is closed")
    if before["status"] == status:
        return summary(before)
    accounts_repo.update_fields(conn, int(before["id"]), {"status": status})
    after = accounts_repo.get(conn, number)
    assert after is not None
    result = summary(after)
    action = "account.suspend" if status == "suspended" else "account.reactivate"
    audit.record(conn, actor, action, f"account:{number}", summary(before), result)
    return result


# ------------------------------------------------------------------ idempotency


def idempotent_replay(
    conn: psycopg.Connection[Any], actor: str, key: str, fingerprint: str
) -> tuple[int, Any] | None:
    """Claim ``key`` for this request (None: go ahead, then call ``idempotent_store``), or
    the (status, body) stored by the request that used it. The same key with another
    request is a 409."""
    if idempotency_repo.claim(conn, actor, key, fingerprint):
        return None
    found = idempotency_repo.stored(conn, actor, key)
    assert found is not None  # the key's owner committed (claim waited for it)
    if found["fingerprint"] != fingerprint or found["status"] is None:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        )
    return int(found["status"]), found["response"]


def idempotent_store(
    conn: psycopg.Connection[Any], actor: str, key: str, status: int, body: Any
) -> None:
    idempotency_repo.complete(conn, actor, key, status, body)


# ------------------------------------------------------------------ bulk recharge

MAX_ERRORS_SHOWN = 1000


def bulk_recharge(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    parsed: ParsedFile,
    note: str,
    file_sha256: str,
    apply: bool,
) -> dict[str, Any]:
    """Validate every row (syntax, then accounts), then recharge them all or none.

    Raises 422 with every bad row by line; with ``apply`` false answers the preview only.
    """
    errors = list(parsed.errors)
    keys = [r.key for r in parsed.rows]
    by_number, by_ani = accounts_repo.resolve_for_recharge(conn, keys, keys)
    targets: list[tuple[int, Any]] = []  # (account id, row)
    for row in parsed.rows:
        if parsed.key_column == "extension":
            account_id = by_ani.get(row.key, by_number.get(row.key))
        else:
            account_id = by_number.get(row.key)
        if account_id is None:
            errors.append(RowError(row.line, parsed.key_column, f"no account {row.key}"))
        else:
            targets.append((account_id, row))
    taken: dict[int, int] = {}
    for account_id, row in targets:
        if account_id in taken:  # an extension and a number of the same account
            errors.append(
                RowError(
                    row.line,
                    parsed.key_column,
                    f"{row.key} is the account already recharged on line {taken[account_id]}",
                )
            )
        taken.setdefault(account_id, row.line)
    if errors:
        errors.sort(key=lambda e: (e.line, e.column))
        raise ApiError(
            422,
            "invalid_file",
            f"{len(errors)} bad row(s); nothing was recharged",
            {
                "error_count": len(errors),
                "errors": [e.as_json() for e in errors[:MAX_ERRORS_SHOWN]],
            },
        )
    accounts = {int(r["id"]): r for r in accounts_repo.lock_many(conn, list(taken))}
    too_large = [
        {"line": row.line, "account": accounts[account_id]["number"], "message": problem}
        for account_id, row in targets
        if (problem := _balance_too_large(
            accounts[account_id]["number"], Decimal(accounts[account_id]["balance"]), row.amount
        ))
    ]  # fmt: skip
    if too_large:
        raise ApiError(
            400, "balance_too_large",
            f"{len(too_large)} row(s) would bring a balance above the largest balance,"
            f" {MAX_AMOUNT}; nothing was recharged",
            {"max_balance": str(MAX_AMOUNT), "rows": too_large},
        )  # fmt: skip
    lines: list[dict[str, Any]] = []
    total = Decimal(0)
    for account_id, row in targets:
        account = accounts[account_id]
        before = Decimal(account["balance"])
        after = before + row.amount
        if apply:
            after = accounts_repo.move_balance(
                conn,
                account_id,
                row.amount,
                kind="recharge",
                actor=actor,
                note=row.note or note,
            )
            audit.record(
                conn,
                actor,
                "account.recharge",
                f"account:{account['number']}",
                {"balance": str(before)},
                {
                    "balance": str(after),
                    "amount": str(row.amount),
                    "line": row.line,
                    "bulk_file_sha256": file_sha256,
                },
            )
        total += row.amount
        lines.append(
            {
                "line": row.line,
                parsed.key_column: row.key,
                "account": account["number"],
                "amount": str(row.amount),
                "balance_before": str(before),
                "balance_after": str(after),
            }
        )
    result = {
        "applied": apply,
        "format": parsed.format,
        "key_column": parsed.key_column,
        "rows": len(lines),
        "total": str(total),
        "file_sha256": file_sha256,
        "ignored_columns": parsed.ignored_columns,
        "recharges": lines,
    }
    if apply:
        audit.record(
            conn,
            actor,
            "account.bulk_recharge",
            f"file:{file_sha256}",
            None,
            {k: v for k, v in result.items() if k != "recharges"},
        )
    return result
