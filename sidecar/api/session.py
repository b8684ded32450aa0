"""Dashboard login: ``POST /v1/session`` (JSON), ``GET`` it, ``DELETE`` it (logout).

The session cookie is HttpOnly, SameSite=Strict, Secure unless APOLO_SESSION_COOKIE_SECURE
is false, and holds a random value stored only as SHA-256. The login answer carries the
session's CSRF token: cookie-authenticated POST/PATCH/DELETE requests must send it in
``X-CSRF-Token`` (or a ``csrf_token`` form field).

Login CSRF: the JSON login takes ``Content-Type: application/json`` only (a cross-site page
cannot send that without a CORS preflight, which the sidecar never grants) and refuses a
request a browser marks as cross-site (``Origin`` of another host, ``Sec-Fetch-Site:
cross-site``); the dashboard's form login has its own double-submit token.

Failed logins are limited per username and per client address by one atomic statement
(``apolo_login_attempt()``, sql/010): an attempt is counted before its password is checked,
so simultaneous attempts never get more checks than the limit; a success gives its count
back. The request runs in autocommit so the count stays when a failed login's answer (an
error) would roll back; a successful login's writes are one transaction of their own. One
pooled connection per login, whatever happens: strangers cannot tie up the pool.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from sidecar.api._request import json_body
from sidecar.auth import (
    SESSION_COOKIE,
    USER_ROLES,
    access_settings,
    client_address,
    cross_site,
    hash_password,
    hash_token,
    password_needs_rehash,
    require,
    verify_password,
)
from sidecar.db import get_conn, statements_are_atomic
from sidecar.errors import ApiError, error_body
from sidecar.repo import audit
from sidecar.repo import users as users_repo

bp = Blueprint("session", __name__, url_prefix="/v1")
_dummy_hash: list[str] = []
# what the users table allows (sql/004): anything else is no user, with nothing to look up
USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def dummy_password_hash() -> str:
    """Verified when the username is unknown, so both failures take the same time."""
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_urlsafe(24)))
    return _dummy_hash[0]


def failure_keys(username: str) -> list[str]:
    cfg = access_settings()
    address = client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For"), cfg.trusted_proxies
    )
    return [f"user:{username.lower()}", f"addr:{address}"]


@dataclass(frozen=True)
class LoginResult:
    """``user`` set: logged in, with the new session's cookie value and CSRF token;
    ``retry_after`` > 0: refused for too many failures; neither: wrong credentials."""

    user: dict[str, Any] | None = None
    cookie: str = ""
    csrf: str = ""
    expires_at: datetime | None = None
    retry_after: int = 0


def attempt_login(username: str, password: str, via: str | None = None) -> LoginResult:
    """The one login check behind the JSON API and the dashboard form: failed-login limits,
    password check (timing-safe for unknown users), rehash, session creation, audit.
    Must come before anything else of the request uses the database."""
    if USERNAME.fullmatch(username) is None:
        return LoginResult()
    cfg = access_settings()
    statements_are_atomic()  # the attempt's count is committed whatever the answer
    conn = get_conn()
    if not conn.autocommit:
        raise RuntimeError("attempt_login runs first on the request's connection")
    keys = failure_keys(username)
    limits = [cfg.login_max_failures, cfg.login_max_failures_per_address]
    wait = users_repo.claim_login_attempt(conn, keys, limits, cfg.login_window_seconds)
    if wait:
        return LoginResult(retry_after=wait)
    user = users_repo.credentials(conn, username)
    if (
        not verify_password(user["password_hash"] if user else dummy_password_hash(), password)
        or not user
    ):
        return LoginResult()
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with conn.transaction():
        if password_needs_rehash(user["password_hash"]):
            users_repo.set_password_hash(conn, int(user["id"]), hash_password(password))
        users_repo.login_succeeded(conn, keys[0], keys[1:])
        created = users_repo.create_session(
            conn, hash_token(cookie), int(user["id"]), csrf, cfg.session_hours
        )
        actor = f"user:{user['username']}"
        details = {"address": keys[1][5:], **({"via": via} if via else {})}
        audit.record(conn, actor, "user.login", actor, None, details)
    return LoginResult(user, cookie, csrf, created["expires_at"])


def _refused() -> ApiError:
    return ApiError(401, "unauthorized", "wrong username or password")


@bp.post("/session")
def login():  # type: ignore[no-untyped-def]
    """Public by nature: the credentials are the body. Without them it answers 401."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the credentials as application/json")
    if cross_site():
        raise ApiError(403, "cross_origin", "a login from another site is refused")
    body = json_body()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise ApiError(401, "unauthorized", 'send {"username", "password"}')
    if len(username) > 64 or len(password) > 1024:
        raise _refused()
    result = attempt_login(username, password)
    if result.retry_after:
        refused = jsonify(
            error_body(
                "too_many_attempts",
                "too many failed logins; try again later",
                {"retry_after_seconds": result.retry_after},
            )
        )
        return refused, 429, {"Retry-After": str(result.retry_after)}
    user = result.user
    if user is None:
        raise _refused()
    cfg = access_settings()
    cookie, csrf = result.cookie, result.csrf
    response = jsonify(
        {
            "username": user["username"],
            "role": user["role"],
            "csrf_token": csrf,
            "expires_at": result.expires_at,
        }
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(cfg.session_hours * 3600),
        httponly=True,
        samesite="Strict",
        secure=cfg.cookie_secure,
        path="/",
    )
    return response


@bp.get("/session")
@require(*USER_ROLES)
def current():  # type: ignore[no-untyped-def]
    """Who is calling; for a session, its CSRF token (the dashboard reads it after a reload)."""
    session: dict[str, Any] | None = g.get("session")
    body: dict[str, Any] = {"actor": g.actor, "role": g.role}
    if session is not None:
        body.update(
            username=session["username"],
            csrf_token=session["csrf_token"],
            expires_at=session["expires_at"],
        )
    return jsonify(body)


@bp.delete("/session")
@require(*USER_ROLES)
def logout():  # type: ignore[no-untyped-def]
    cookie = request.cookies.get(SESSION_COOKIE)
    if g.get("session") is not None and cookie:
        users_repo.delete_session(get_conn(), hash_token(cookie))
    response = Response(status=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=access_settings().cookie_secure,
    )
    return response
