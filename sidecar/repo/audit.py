"""Audit log: who did what, when, with the state before and after."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_dumps = partial(json.dumps, default=str)  # Decimal and datetime as strings


def record(
    conn: psycopg.Connection[Any],
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    conn.execute(
        "INSERT INTO audit_log (actor, action, target, before, after) VALUES (%s, %s, %s, %s, %s)",
        (
            actor,
            action,
            target,
            Jsonb(before, dumps=_dumps) if before is not None else None,
            Jsonb(after, dumps=_dumps) if after is not None else None,
        ),
    )


def recent(
    conn: psycopg.Connection[Any],
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first; ``actor``/``target`` match a substring (any case), ``action`` a prefix.
    The next page is ``before_id`` = the last id returned."""
    clauses: list[str] = []
    params: list[object] = []
    if actor:
        clauses.append("actor ILIKE %s")
        params.append(f"%{_like(actor)}%")
    if action:
        clauses.append("action LIKE %s")
        params.append(f"{_like(action)}%")
    if target:
        clauses.append("target ILIKE %s")
        params.append(f"%{_like(target)}%")
    if before_id is not None:
        clauses.append("id < %s")
        params.append(before_id)
    sql = "SELECT id, created_at, actor, action, target, before, after FROM audit_log"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY id DESC LIMIT %s"
    params.append(limit)
    return conn.execute(sql, params).fetchall()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
