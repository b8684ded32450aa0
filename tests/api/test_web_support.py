"""Helpers of the dashboard tests (no tests here): app with the dashboard, users, login."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sidecar.auth import hash_password, load_access_settings
from sidecar.repo import users as users_repo

PASSWORD = "correct horse battery staple"
ROLES = ("admin", "operator", "viewer")
PAGES = ("/dashboard/", "/dashboard/calls", "/dashboard/accounts", "/dashboard/rates",
         "/dashboard/cdrs", "/dashboard/audit", "/dashboard/alerts")  # fmt: skip


def register_dashboard(app: Any) -> Any:
    """Until the lead registers it in sidecar/app.py."""
    from sidecar.web import bp

    if bp.name not in app.blueprints:
        app.register_blueprint(bp)
    return app


def plain_http(app: Any, **env: str) -> None:
    """The test client speaks http: the session cookie must not be Secure-only."""
    app.extensions["apolo_access"] = load_access_settings(
        {"APOLO_SESSION_COOKIE_SECURE": "false", **env}
    )


def clear_users(db_url: str) -> None:
    # conftest's `clean` truncates these too, but tests that add users may run first
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("TRUNCATE users, user_sessions, login_failures CASCADE")


def make_user(db_url: str, username: str, role: str, password: str = PASSWORD) -> None:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        users_repo.create(c, username, role, hash_password(password))
        c.commit()


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1)


def login(client: Any, username: str, password: str = PASSWORD, next_: str = "") -> Any:
    form = client.get("/dashboard/login" + (f"?next={next_}" if next_ else ""))
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    return client.post(
        "/dashboard/login",
        data={
            "username": username,
            "password": password,
            "login_csrf": hidden(html, "login_csrf"),
            "next": hidden(html, "next"),
        },
    )


def csrf_of(client: Any, path: str = "/dashboard/accounts") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return hidden(page.get_data(as_text=True), "csrf_token")


def dashboard_with_users(app: Any, db_url: str, **env: str) -> Any:
    """The dashboard on plain HTTP, with no users but one per role (``<role>-user``)."""
    register_dashboard(app)
    plain_http(app, **env)
    clear_users(db_url)
    for role in ROLES:
        make_user(db_url, f"{role}-user", role)
    return app


def session_as(app: Any, role: str) -> Any:
    """A test client logged in as the ``<role>-user`` of :func:`dashboard_with_users`."""
    client = app.test_client()
    assert login(client, f"{role}-user").status_code == 303
    return client


def rows(db_url: str, query: str, *args: object) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        return c.execute(query, args).fetchall()
