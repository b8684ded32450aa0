"""Principals: dashboard/CLI users, and the admin side of API tokens (list, revoke).

Token lookup and creation stay in ``sidecar.repo.tokens``; listing and revoking live here
with the rest of the access administration.
"""

from __future__ import annotations

from typing import Any

import psycopg

_USER_COLUMNS = "id, username, role, disabled_at, created_at, updated_at"


def create(conn: psycopg.Connection[Any], username: str, role: str, password_hash: str) -> int:
    row = conn.execute(
        "INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s) RETURNING id",
        (username, role, password_hash),
    ).fetchone()
    assert row is not None
    return int(row["id"])


def exists(conn: psycopg.Connection[Any], username: str) -> bool:
    found = conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone()
    return found is not None


def get(conn: psycopg.Connection[Any], username: str) -> dict[str, Any] | None:
    return conn.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE username = %s", (username,)
    ).fetchone()


def credentials(conn: psycopg.Connection[Any], username: str) -> dict[str, Any] | None:
    """id, role and password hash of an enabled user (for a login check)."""
    return conn.execute(
        "SELECT id, username, role, password_hash FROM users"
        " WHERE username = %s AND disabled_at IS NULL",
        (username,),
    ).fetchone()


def set_password_hash(conn: psycopg.Connection[Any], user_id: int, password_hash: str) -> None:
    conn.execute(
        "UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s",
        (password_hash, user_id),
    )


def list_all(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username").fetchall()


def set_disabled(conn: psycopg.Connection[Any], username: str, disabled: bool) -> bool:
    row = conn.execute(
        "UPDATE users SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, now()) END,"
        " updated_at = now() WHERE username = %s RETURNING id",
        (disabled, username),
    ).fetchone()
    return row is not None


def list_tokens(conn: psycopg.Connection[Any], include_revoked: bool) -> list[dict[str, Any]]:
    sql = "SELECT id, name, role, created_at, revoked_at FROM api_tokens"
    if not include_revoked:
        sql += " WHERE revoked_at IS NULL"
    return conn.execute(sql + " ORDER BY id").fetchall()


def get_token(conn: psycopg.Connection[Any], token_id: int) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE id = %s FOR UPDATE",
        (token_id,),
    ).fetchone()


def revoke_token(conn: psycopg.Connection[Any], token_id: int) -> None:
    conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s",
        (token_id,),
    )


# ------------------------------------------------------------------ sessions


def create_session(
    conn: psycopg.Connection[Any], token_hash: str, user_id: int, csrf_token: str, hours: float
) -> dict[str, Any]:
    row = conn.execute(
        "INSERT INTO user_sessions (token_hash, user_id, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
        (token_hash, user_id, csrf_token, hours * 3600),
    ).fetchone()
    assert row is not None
    return dict(row)


def active_session(
    conn: psycopg.Connection[Any], token_hash: str, idle_minutes: float
) -> dict[str, Any] | None:
    """The live session (not expired, not idle too long, user enabled), touched."""
    return conn.execute(
        "UPDATE user_sessions s SET last_seen_at = now() FROM users u"
        " WHERE s.token_hash = %s AND u.id = s.user_id AND u.disabled_at IS NULL"
        " AND s.expires_at > now()"
        " AND s.last_seen_at > now() - make_interval(secs => %s)"
        " RETURNING u.username, u.role, s.csrf_token, s.expires_at",
        (token_hash, idle_minutes * 60),
    ).fetchone()


def delete_session(conn: psycopg.Connection[Any], token_hash: str) -> None:
    conn.execute("DELETE FROM user_sessions WHERE token_hash = %s", (token_hash,))


def delete_expired_sessions(conn: psycopg.Connection[Any]) -> int:
    return conn.execute("DELETE FROM user_sessions WHERE expires_at < now()").rowcount


def claim_login_attempt(
    conn: psycopg.Connection[Any], keys: list[str], limits: list[int], window_seconds: int
) -> int:
    """Count one login attempt against every key, atomically, unless a key has used up its
    limit in its window: 0 (counted; check the password), else the seconds to wait."""
    row = conn.execute(
        "SELECT apolo_login_attempt(%s, %s, %s) AS wait", (keys, limits, window_seconds)
    ).fetchone()
    assert row is not None
    return int(row["wait"])


def login_succeeded(conn: psycopg.Connection[Any], user_key: str, other_keys: list[str]) -> None:
    """The attempt was not a failure: the username starts over, the other keys (the
    address) get their count back."""
    conn.execute("DELETE FROM login_failures WHERE key = %s", (user_key,))
    conn.execute(
        "UPDATE login_failures SET failures = greatest(failures - 1, 0) WHERE key = ANY(%s)",
        (other_keys,),
    )
