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
