"""Login form and logout, on the same users, sessions and failed-login limits as
``POST /v1/session`` (the counters are shared, so the two doors add up).

Before a session exists the form is protected by a double-submit token: a random value in
an HttpOnly, SameSite=Strict cookie that the form must repeat.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from flask import Response, g, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from sidecar.api.session import attempt_login
from sidecar.auth import (
    SESSION_COOKIE,
    access_settings,
    hash_token,
)
from sidecar.db import get_conn
from sidecar.repo import users as users_repo
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, page

LOGIN_CSRF_COOKIE = "apolo_login_csrf"
HOME = "/dashboard/"


# a path of the dashboard in URL characters only: no host, no whitespace or control
# character (CR/LF would split the Location header), no backslash
_NEXT = re.compile(r"/dashboard/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}")


def _safe_next(raw: str | None) -> str:
    """Only a dashboard path of this site (never another host: open redirect); anything
    else falls back to the overview."""
    if raw and _NEXT.fullmatch(raw) and "//" not in raw:
        return raw
    return HOME


def _cookie(response: BaseResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=access_settings().cookie_secure,
        path="/",
    )


def _form(error: str = "", status: int = 200, retry_after: int = 0) -> Any:
    token = secrets.token_urlsafe(32)
    html = render_template(
        "login.html",
        login_csrf=token,
        error=error,
        next=_safe_next(request.values.get("next")),
        username=request.form.get("username", "")[:64],
    )
    response = Response(html, status=status, mimetype="text/html")
    _cookie(response, LOGIN_CSRF_COOKIE, token, 3600)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.get("/login")
def login_form() -> Any:
    """Public by nature: the form that asks for credentials."""
    return _form()


@bp.post("/login")
def login_submit() -> Any:
    sent = request.form.get("login_csrf", "")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _form("The form expired or was not sent from this site; try again.", 403)
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username or not password or len(username) > 64 or len(password) > 1024:
        return _form("Wrong username or password.", 401)
    result = attempt_login(username, password, via="web")
    if result.retry_after:
        message = f"Too many failed logins. Try again in {result.retry_after} seconds."
        return _form(message, 429, retry_after=result.retry_after)
    if result.user is None:
        return _form("Wrong username or password.", 401)
    cfg = access_settings()
    cookie = result.cookie
    response = redirect(_safe_next(request.form.get("next")), code=303)
    _cookie(response, SESSION_COOKIE, cookie, int(cfg.session_hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@bp.post("/logout")
@page(*READERS)
def logout() -> Any:
    cookie = request.cookies.get(SESSION_COOKIE)
    if g.get("session") is not None and cookie:
        users_repo.delete_session(get_conn(), hash_token(cookie))
    response = redirect("/dashboard/login", code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="Strict",
        secure=access_settings().cookie_secure,
    )  # fmt: skip
    return response
