"""Who may see a dashboard page: the API's own authentication, answered as pages.

Without a session (or after it ended) a page redirects to the login form; a wrong role
gets a 403 page; a state-changing request without the session's CSRF token (form field
``csrf_token``, checked by :func:`sidecar.auth.authenticate`) gets a 403 page and changes
nothing. The switch role never sees the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import quote

from flask import g, redirect, render_template, request

from sidecar.auth import authenticate
from sidecar.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
READERS = ("admin", "operator", "viewer")
RECHARGERS = ("admin", "operator")
ADMINS = ("admin",)


def login_url() -> str:
    target = request.full_path.rstrip("?") if request.method == "GET" else request.path
    return "/dashboard/login?next=" + quote(target, safe="/")


def page(*roles: str) -> Callable[[F], F]:
    """A page for these roles (a larger body than the app's limit is declared with
    :func:`sidecar.request_guard.body_limit`)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                actor, role = authenticate()
            except ApiError as exc:
                if exc.status == 401:
                    return redirect(login_url(), code=303 if request.method == "POST" else 302)
                return render_template("error.html", message=exc.message), exc.status
            if role not in roles:
                message = f"Your role ({role}) may not do this."
                return render_template("error.html", message=message), 403
            g.actor = actor
            g.role = role
            return view(*args, **kwargs)

        wrapper.apolo_roles = roles  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def can(*roles: str) -> bool:
    return g.get("role") in roles
