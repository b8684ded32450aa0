"""API tokens (hashed at rest)."""

from __future__ import annotations

from typing import Any

import psycopg


def find_active(conn: psycopg.Connection[Any], token_hash: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, name, role FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
        (token_hash,),
    ).fetchone()


def create(conn: psycopg.Connection[Any], name: str, role: str, token_hash: str) -> int:
    row = conn.execute(
        "INSERT INTO api_tokens (name, role, token_hash) VALUES (%s, %s, %s) RETURNING id",
        (name, role, token_hash),
    ).fetchone()
    assert row is not None
    return int(row["id"])
