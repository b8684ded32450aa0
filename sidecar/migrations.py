"""A tiny migration runner: numbered SQL files in ``sql/``, each applied once, in order.

Applied versions are recorded in ``schema_version``; an advisory lock keeps two
concurrent upgrades (two sidecars starting at once) from racing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x4150_4F4C  # "APOL"


def sql_dir() -> Path:
    configured = os.environ.get("APOLO_SQL_DIR")
    if configured:
        return Path(configured)
    # sidecar/sql links to the repository's sql/, so a built wheel carries the migrations
    return Path(__file__).resolve().parent / "sql"


def pending_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.iterdir()):
        match = _FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return found


def upgrade(conn: psycopg.Connection[Any], directory: Path | None = None) -> list[str]:
    """Apply every migration not yet recorded; the names applied (empty when up to date)."""
    directory = directory or sql_dir()
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        with conn.cursor(row_factory=tuple_row) as cur:
            done = {r[0] for r in cur.execute("SELECT version FROM schema_version").fetchall()}
        for version, path in pending_files(directory):
            if version in done:
                continue
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute(
                "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, path.name)
            )
            applied_now.append(path.name)
    return applied_now
