"""The dashboard blueprint, its template filters and page context."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from sidecar.web import formatting

bp = Blueprint(
    "web",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

for _name in ("money", "duration", "count", "percent", "timestamp"):
    bp.add_app_template_filter(getattr(formatting, _name), f"apolo_{_name}")


@bp.context_processor
def _page_context() -> dict[str, Any]:
    session = g.get("session")
    return {
        "role": g.get("role"),
        "actor": g.get("actor"),
        "csrf_token": session["csrf_token"] if session else "",
    }
