"""Forced Authorization Codes (stored as HMAC plus last digits, never in clear)."""

from __future__ import annotations

from typing import Any

import psycopg

_PUBLIC = (
    "f.id, f.name, f.level, f.last_digits, f.code_length, a.number AS account,"
    " f.created_at, f.updated_at"
)
_FROM = "FROM fac_codes f JOIN accounts a ON a.id = f.account_id"


def create(
    conn: psycopg.Connection[Any],
    *,
    code_hmac: str,
    last_digits: str,
    code_length: int,
    name: str,
    level: int,
    account_id: int,
) -> int | None:
    """The new id, or None when the code or the name is already taken."""
    row = conn.execute(
        "INSERT INTO fac_codes (code_hmac, last_digits, code_length, name, level, account_id)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (code_hmac, last_digits, code_length, name, level, account_id),
    ).fetchone()
    return None if row is None else int(row["id"])


def get(conn: psycopg.Connection[Any], fac_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    sql = f"SELECT {_PUBLIC} {_FROM} WHERE f.id = %s"
    if lock:
        sql += " FOR UPDATE OF f"
    return conn.execute(sql, (fac_id,)).fetchone()


def list_all(conn: psycopg.Connection[Any], account_id: int | None = None) -> list[dict[str, Any]]:
    if account_id is None:
        return conn.execute(f"SELECT {_PUBLIC} {_FROM} ORDER BY f.id").fetchall()
    return conn.execute(
        f"SELECT {_PUBLIC} {_FROM} WHERE f.account_id = %s ORDER BY f.id", (account_id,)
    ).fetchall()


def name_taken(conn: psycopg.Connection[Any], name: str, other_than: int | None = None) -> bool:
    row = conn.execute(
        "SELECT 1 FROM fac_codes WHERE name = %s AND id IS DISTINCT FROM %s", (name, other_than)
    ).fetchone()
    return row is not None


def update(
    conn: psycopg.Connection[Any], fac_id: int, *, name: str, level: int, account_id: int
) -> None:
    conn.execute(
        "UPDATE fac_codes SET name = %s, level = %s, account_id = %s, updated_at = now()"
        " WHERE id = %s",
        (name, level, account_id, fac_id),
    )


def delete(conn: psycopg.Connection[Any], fac_id: int) -> bool:
    row = conn.execute("DELETE FROM fac_codes WHERE id = %s RETURNING id", (fac_id,)).fetchone()
    return row is not None


def account_for(
    conn: psycopg.Connection[Any], code_hmac: str | None, description: str | None
) -> dict[str, Any] | None:
    """The account of a FAC: by the code's HMAC when the row carries a code, and only then;
    by FAC name (CUCM's authCodeDescription) only for a row that carries no code value
    (CUCM's "display FAC in CDR" off). An unknown code is never looked up by its name."""
    select = (
        "SELECT a.id, a.number, a.plan_id, a.type, a.status, f.id AS fac_id, f.name AS fac_name"
        " FROM fac_codes f JOIN accounts a ON a.id = f.account_id WHERE "
    )
    if code_hmac:
        return conn.execute(select + "f.code_hmac = %s", (code_hmac,)).fetchone()
    if description:
        return conn.execute(select + "f.name = %s", (description,)).fetchone()
    return None
