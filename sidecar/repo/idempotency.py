"""Idempotency keys of money-moving requests (see sql/004_access.sql).

``claim`` inserts the key in the caller's transaction. A concurrent request with the same
key blocks on the primary key until the first one commits or rolls back, then either sees
the stored response (replay) or claims the key itself (the first one failed).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def claim(conn: psycopg.Connection[Any], actor: str, key: str, fingerprint: str) -> bool:
    """True when this transaction now owns the key; False when it was already used."""
    row = conn.execute(
        "INSERT INTO idempotency_keys (actor, key, fingerprint) VALUES (%s, %s, %s)"
        " ON CONFLICT (actor, key) DO NOTHING RETURNING key",
        (actor, key, fingerprint),
    ).fetchone()
    return row is not None


def stored(conn: psycopg.Connection[Any], actor: str, key: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT fingerprint, status, response, created_at FROM idempotency_keys"
        " WHERE actor = %s AND key = %s",
        (actor, key),
    ).fetchone()


def complete(
    conn: psycopg.Connection[Any], actor: str, key: str, status: int, response: Any
) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET status = %s, response = %s WHERE actor = %s AND key = %s",
        (status, Jsonb(response), actor, key),
    )


def purge_older_than(conn: psycopg.Connection[Any], days: int) -> int:
    cur = conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(days => %s)",
        (days,),
    )
    return cur.rowcount
