"""Trunks: networks the operator declared, and how calls from them are billed."""

from __future__ import annotations

from typing import Any

import psycopg

_COLUMNS = (
    "t.id, t.name, a.number AS account, t.trust_caller_id, t.trust_billing_header,"
    " t.created_at,"
    " array(SELECT c.cidr::text FROM trunk_cidrs c WHERE c.trunk_id = t.id ORDER BY c.cidr)"
    " AS cidrs"
)
_FROM = "FROM trunks t LEFT JOIN accounts a ON a.id = t.account_id"


def list_all(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(f"SELECT {_COLUMNS} {_FROM} ORDER BY t.name").fetchall()


def get(conn: psycopg.Connection[Any], name: str, *, lock: bool = False) -> dict[str, Any] | None:
    sql = f"SELECT {_COLUMNS} {_FROM} WHERE t.name = %s"
    if lock:
        sql += " FOR UPDATE OF t"
    return conn.execute(sql, (name,)).fetchone()


def overlapping(conn: psycopg.Connection[Any], cidrs: list[str]) -> list[dict[str, Any]]:
    """Declared CIDRs sharing an address with any of ``cidrs``, with their trunk's name."""
    return conn.execute(
        "SELECT n.cidr::text AS cidr, c.cidr::text AS overlaps, t.name AS trunk"
        " FROM unnest(%s::cidr[]) AS n(cidr)"
        " JOIN trunk_cidrs c ON c.cidr && n.cidr JOIN trunks t ON t.id = c.trunk_id"
        " ORDER BY n.cidr, c.cidr",
        (cidrs,),
    ).fetchall()


def create(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    account_id: int | None,
    trust_caller_id: bool,
    trust_billing_header: bool,
    cidrs: list[str],
) -> int:
    row = conn.execute(
        "INSERT INTO trunks (name, account_id, trust_caller_id, trust_billing_header)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (name, account_id, trust_caller_id, trust_billing_header),
    ).fetchone()
    assert row is not None
    trunk_id = int(row["id"])
    conn.execute(
        "INSERT INTO trunk_cidrs (trunk_id, cidr) SELECT %s, unnest(%s::cidr[])",
        (trunk_id, cidrs),
    )
    return trunk_id


def delete(conn: psycopg.Connection[Any], trunk_id: int) -> None:
    conn.execute("DELETE FROM trunks WHERE id = %s", (trunk_id,))


def for_identity(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every trunk with what the identity rule needs (name, CIDRs, account number, trust)."""
    return conn.execute(
        "SELECT t.name, a.number AS account, t.trust_caller_id, t.trust_billing_header,"
        " array_agg(c.cidr::text ORDER BY c.cidr) AS cidrs"
        " FROM trunks t JOIN trunk_cidrs c ON c.trunk_id = t.id"
        " LEFT JOIN accounts a ON a.id = t.account_id GROUP BY t.id, a.number ORDER BY t.name"
    ).fetchall()
