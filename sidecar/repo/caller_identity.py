"""Who is calling: accounts found by the identity rule's keys, and SIP users mapped to accounts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

# kind -> how a key of that kind names an account (sidecar/identity.py, LookupKind)
_FIND = (
    "SELECT k.kind, k.key, a.id, a.number, a.plan_id, a.type, a.status,"
    " least(a.max_call_cost, p.max_call_cost) AS call_cap"
    " FROM unnest(%s::text[], %s::text[]) AS k(kind, key)"
    " CROSS JOIN LATERAL ("
    "   SELECT x.id FROM accounts x WHERE k.kind = 'number' AND x.number = k.key"
    "   UNION ALL SELECT n.account_id FROM account_anis n WHERE k.kind = 'ani' AND n.ani = k.key"
    "   UNION ALL SELECT s.account_id FROM account_sip_users s"
    "    WHERE k.kind = 'sip_user' AND s.sip_user = k.key"
    " ) m(account_id)"
    " JOIN accounts a ON a.id = m.account_id JOIN rate_plans p ON p.id = a.plan_id"
)


def find_accounts(
    conn: psycopg.Connection[Any], keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The account each (kind, key) names, in one round trip; keys naming none are absent.

    ``call_cap`` is the tighter of the account's and its plan's ``max_call_cost``.
    """
    if not keys:
        return {}
    rows = conn.execute(_FIND, ([k for k, _ in keys], [v for _, v in keys])).fetchall()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        found.setdefault((row.pop("kind"), row.pop("key")), row)
    return found


def sip_users_of(conn: psycopg.Connection[Any], account_id: int) -> list[str]:
    return list(sip_users_by_account(conn, [account_id]).get(account_id, []))


def sip_users_by_account(
    conn: psycopg.Connection[Any], account_ids: list[int]
) -> dict[int, list[str]]:
    rows = conn.execute(
        "SELECT account_id, sip_user FROM account_sip_users WHERE account_id = ANY(%s)"
        " ORDER BY sip_user",
        (account_ids,),
    ).fetchall()
    found: dict[int, list[str]] = {}
    for r in rows:
        found.setdefault(int(r["account_id"]), []).append(r["sip_user"])
    return found


def sip_users_taken_by_others(
    conn: psycopg.Connection[Any], account_id: int | None, users: list[str]
) -> list[str]:
    rows = conn.execute(
        "SELECT sip_user FROM account_sip_users WHERE sip_user = ANY(%s)"
        " AND account_id IS DISTINCT FROM %s ORDER BY sip_user",
        (users, account_id),
    ).fetchall()
    return [r["sip_user"] for r in rows]


def replace_sip_users(conn: psycopg.Connection[Any], account_id: int, users: list[str]) -> None:
    """Exactly ``users`` for the account; one held by another account raises UniqueViolation
    (never silently skipped, even when it was taken a moment ago)."""
    conn.execute("DELETE FROM account_sip_users WHERE account_id = %s", (account_id,))
    conn.execute(
        "INSERT INTO account_sip_users (sip_user, account_id) SELECT unnest(%s::text[]), %s",
        (users, account_id),
    )
