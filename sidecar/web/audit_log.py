"""Audit log page: newest first, filtered by actor, action prefix or target."""

from __future__ import annotations

import json
from typing import Any

from flask import render_template, request

from sidecar.db import get_conn
from sidecar.repo import audit
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, page

PAGE_SIZE = 50


def _cursor(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> list[tuple[str, str, str]]:
    """(field, before, after) of the fields that differ; all fields on create/delete."""
    old, new = before or {}, after or {}
    keys = sorted(set(old) | set(new))
    return [
        (k, _show(old.get(k)), _show(new.get(k)))
        for k in keys
        if old.get(k) != new.get(k) or not (before and after)
    ]


def _show(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


@bp.get("/audit")
@page(*READERS)
def audit_page() -> Any:
    filters = {k: (request.args.get(k) or "").strip()[:200] for k in ("actor", "action", "target")}
    rows = audit.recent(
        get_conn(),
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        target=filters["target"] or None,
        before_id=_cursor(request.args.get("before")),
        limit=PAGE_SIZE + 1,
    )
    entries = [{**r, "changes": changes(r["before"], r["after"])} for r in rows[:PAGE_SIZE]]
    more = entries[-1]["id"] if len(rows) > PAGE_SIZE else None
    return render_template("audit.html", entries=entries, filters=filters, more=more)
