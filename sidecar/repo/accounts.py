"""Accounts, their ANIs and their balance movements (ledger)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.repo import caller_identity

_ACCOUNT_COLUMNS = (
    "a.id, a.number, a.name, a.plan_id, p.name AS plan, a.type, a.status, a.balance,"
    " a.credit_limit, a.reserved, a.active_calls, a.max_calls, a.low_balance_threshold,"
    " a.max_call_cost,"
    " a.created_at, a.updated_at"
)


def find_for_call(
    conn: psycopg.Connection[Any], account: str | None, caller: str
) -> dict[str, Any] | None:
    """The account named by ``account`` (its number), else the one owning ANI ``caller``.

    ``call_cap`` is the tighter of the account's and its plan's ``max_call_cost`` (None: none).
    """
    columns = (
        "SELECT a.id, a.number, a.plan_id, a.type, a.status,"
        " least(a.max_call_cost, p.max_call_cost) AS call_cap"
    )
    if account:
        return conn.execute(
            f"{columns} FROM accounts a JOIN rate_plans p ON p.id = a.plan_id WHERE a.number = %s",
            (account,),
        ).fetchone()
    if not caller:
        return None
    return conn.execute(
        f"{columns} FROM account_anis n JOIN accounts a ON a.id = n.account_id"
        " JOIN rate_plans p ON p.id = a.plan_id WHERE n.ani = %s",
        (caller,),
    ).fetchone()


def get(conn: psycopg.Connection[Any], number: str, *, lock: bool = False) -> dict[str, Any] | None:
    sql = (
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a JOIN rate_plans p ON p.id = a.plan_id"
        " WHERE a.number = %s"
    )
    if lock:
        sql += " FOR UPDATE OF a"
    row = conn.execute(sql, (number,)).fetchone()
    if row is not None:
        row["anis"] = anis_of(conn, int(row["id"]))
        row["sip_users"] = caller_identity.sip_users_of(conn, int(row["id"]))
    return row


def get_by_id(conn: psycopg.Connection[Any], account_id: int) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, number, plan_id, type, status FROM accounts WHERE id = %s", (account_id,)
    ).fetchone()


def anis_of(conn: psycopg.Connection[Any], account_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT ani FROM account_anis WHERE account_id = %s ORDER BY ani", (account_id,)
    ).fetchall()
    return [r["ani"] for r in rows]


def create(
    conn: psycopg.Connection[Any],
    *,
    number: str,
    name: str,
    plan_id: int,
    type_: str,
    credit_limit: Decimal,
    max_calls: int | None,
    anis: list[str],
) -> int:
    row = conn.execute(
        "INSERT INTO accounts (number, name, plan_id, type, credit_limit, max_calls)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (number, name, plan_id, type_, credit_limit, max_calls),
    ).fetchone()
    assert row is not None
    account_id = int(row["id"])
    for ani in anis:
        conn.execute(
            "INSERT INTO account_anis (ani, account_id) VALUES (%s, %s)", (ani, account_id)
        )
    return account_id


def number_exists(conn: psycopg.Connection[Any], number: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM accounts WHERE number = %s", (number,)).fetchone() is not None
    )


def taken_anis(conn: psycopg.Connection[Any], anis: list[str]) -> list[str]:
    rows = conn.execute("SELECT ani FROM account_anis WHERE ani = ANY(%s)", (anis,)).fetchall()
    return [r["ani"] for r in rows]


def move_balance(
    conn: psycopg.Connection[Any],
    account_id: int,
    amount: Decimal,
    *,
    kind: str,
    actor: str,
    note: str = "",
    cdr_id: int | None = None,
    reservation_id: int | None = None,
    release_reserved: Decimal = Decimal(0),
    release_calls: int = 0,
) -> Decimal:
    """Add ``amount`` (negative debits) to the balance and write its ledger row.

    ``release_*`` close a reservation in the same statement. Returns the new balance.
    """
    row = conn.execute(
        "UPDATE accounts SET balance = balance + %s, reserved = reserved - %s,"
        " active_calls = greatest(active_calls - %s, 0), updated_at = now()"
        " WHERE id = %s RETURNING balance",
        (amount, release_reserved, release_calls, account_id),
    ).fetchone()
    assert row is not None
    balance = Decimal(row["balance"])
    conn.execute(
        "INSERT INTO ledger (account_id, kind, amount, balance_after, cdr_id, reservation_id,"
        " actor, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (account_id, kind, amount, balance, cdr_id, reservation_id, actor, note),
    )
    return balance


def release(conn: psycopg.Connection[Any], account_id: int, amount: Decimal, calls: int) -> None:
    """Give back reserved money without moving the balance (no ledger row: nothing was spent)."""
    conn.execute(
        "UPDATE accounts SET reserved = reserved - %s,"
        " active_calls = greatest(active_calls - %s, 0) WHERE id = %s",
        (amount, calls, account_id),
    )


def reserve(
    conn: psycopg.Connection[Any],
    *,
    account_id: int,
    call_uuid: str,
    want: Decimal,
    minimum: Decimal,
    seconds: int,
    grace: timedelta,
    rate_id: int,
    caller: str,
    callee: str,
) -> dict[str, Any]:
    """One round trip: the atomic check-and-reserve of ``apolo_reserve`` (sql/001_core.sql)."""
    row = conn.execute(
        "SELECT * FROM apolo_reserve(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (account_id, call_uuid, want, minimum, seconds, grace, rate_id, caller, callee),
    ).fetchone()
    assert row is not None
    return dict(row)


def ledger_of(
    conn: psycopg.Connection[Any], account_id: int, limit: int = 50
) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, kind, amount, balance_after, cdr_id, reservation_id, actor, note, created_at"
        " FROM ledger WHERE account_id = %s ORDER BY id DESC LIMIT %s",
        (account_id, limit),
    ).fetchall()


def lock(conn: psycopg.Connection[Any], account_id: int) -> None:
    conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (account_id,))


# ------------------------------------------------------------------ admin API

_UPDATABLE = (
    "name",
    "plan_id",
    "type",
    "status",
    "credit_limit",
    "max_calls",
    "low_balance_threshold",
)


def search(
    conn: psycopg.Connection[Any],
    *,
    status: str | None = None,
    type_: str | None = None,
    plan: str | None = None,
    q: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Accounts ordered by number, after the keyset cursor ``after`` (a number).

    ``q`` matches a number prefix or a case-insensitive substring of the name.
    """
    where: list[str] = []
    params: list[Any] = []
    if status:
        where.append("a.status = %s")
        params.append(status)
    if type_:
        where.append("a.type = %s")
        params.append(type_)
    if plan:
        where.append("p.name = %s")
        params.append(plan)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(a.number LIKE %s OR a.name ILIKE %s)")
        params.extend([escaped + "%", "%" + escaped + "%"])
    if after is not None:
        where.append("a.number > %s")
        params.append(after)
    sql = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a JOIN rate_plans p ON p.id = a.plan_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY a.number LIMIT %s"
    params.append(limit)
    rows = conn.execute(sql, params).fetchall()
    if rows:
        anis = anis_by_account(conn, [int(r["id"]) for r in rows])
        sip_users = caller_identity.sip_users_by_account(conn, [int(r["id"]) for r in rows])
        for row in rows:
            row["anis"] = anis.get(int(row["id"]), [])
            row["sip_users"] = sip_users.get(int(row["id"]), [])
    return rows


def anis_by_account(conn: psycopg.Connection[Any], account_ids: list[int]) -> dict[int, list[str]]:
    rows = conn.execute(
        "SELECT account_id, ani FROM account_anis WHERE account_id = ANY(%s) ORDER BY ani",
        (account_ids,),
    ).fetchall()
    found: dict[int, list[str]] = {}
    for r in rows:
        found.setdefault(int(r["account_id"]), []).append(r["ani"])
    return found


def update_fields(conn: psycopg.Connection[Any], account_id: int, changes: dict[str, Any]) -> None:
    """Set the given columns (names from a fixed list; values as parameters)."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    if not changes:
        return
    names = [n for n in _UPDATABLE if n in changes]
    assignments = ", ".join(f"{n} = %s" for n in names)
    conn.execute(
        f"UPDATE accounts SET {assignments}, updated_at = now() WHERE id = %s",
        [*(changes[n] for n in names), account_id],
    )


def anis_taken_by_others(
    conn: psycopg.Connection[Any], account_id: int, anis: list[str]
) -> list[str]:
    rows = conn.execute(
        "SELECT ani FROM account_anis WHERE ani = ANY(%s) AND account_id <> %s ORDER BY ani",
        (anis, account_id),
    ).fetchall()
    return [r["ani"] for r in rows]


def replace_anis(conn: psycopg.Connection[Any], account_id: int, anis: list[str]) -> None:
    conn.execute(
        "DELETE FROM account_anis WHERE account_id = %s AND NOT (ani = ANY(%s))",
        (account_id, anis),
    )
    for ani in anis:
        conn.execute(
            "INSERT INTO account_anis (ani, account_id) VALUES (%s, %s)"
            " ON CONFLICT (ani) DO NOTHING",
            (ani, account_id),
        )


def resolve_for_recharge(
    conn: psycopg.Connection[Any], numbers: list[str], anis: list[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Account ids by number and by ANI, for the values a bulk recharge file names."""
    by_number = {
        r["number"]: int(r["id"])
        for r in conn.execute(
            "SELECT id, number FROM accounts WHERE number = ANY(%s)", (numbers,)
        ).fetchall()
    }
    by_ani = {
        r["ani"]: int(r["account_id"])
        for r in conn.execute(
            "SELECT ani, account_id FROM account_anis WHERE ani = ANY(%s)", (anis,)
        ).fetchall()
    }
    return by_number, by_ani


def lock_many(conn: psycopg.Connection[Any], account_ids: list[int]) -> list[dict[str, Any]]:
    """Lock accounts in id order (a fixed order, so two bulk uploads cannot deadlock)."""
    return conn.execute(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts a JOIN rate_plans p ON p.id = a.plan_id"
        " WHERE a.id = ANY(%s) ORDER BY a.id FOR UPDATE OF a",
        (sorted(account_ids),),
    ).fetchall()
