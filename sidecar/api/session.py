"""Dashboard login: ``POST /v1/session`` (JSON), ``GET`` it, ``DELETE`` it (logout).

The session cookie is HttpOnly, SameSite=Strict, Secure unless APOLO_SESSION_COOKIE_SECURE
is false, and holds a random value stored only as SHA-256. The login answer carries the
session's CSRF token: cookie-authenticated POST/PATCH/DELETE requests must send it in
``X-CSRF-Token`` (or a ``csrf_token`` form field). Failed logins are counted per username
and per client address on a connection of their own, because the failed request's own
transaction rolls back; past the limit, logins answer 429 with Retry-After.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from sidecar.api._request import json_body
from sidecar.auth import (
    SESSION_COOKIE,
    USER_ROLES,
    access_settings,
    client_address,
    hash_password,
    hash_token,
    login_retry_after,
    password_needs_rehash,
    require,
    verify_password,
)
from sidecar.db import get_conn, settings_pool
from sidecar.errors import ApiError, error_body
from sidecar.repo import audit
from sidecar.repo import users as users_repo

bp = Blueprint("session", __name__, url_prefix="/v1")
_dummy_hash: list[str] = []


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


def record_failure(keys: list[str]) -> None:
    """On its own connection, committed now: the request's transaction will roll back."""
    window = access_settings().login_window_seconds
    with settings_pool(current_app.config["SETTINGS"]).connection() as conn:
        for key in keys:
            users_repo.add_login_failure(conn, key, window)


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
    password check (timing-safe for unknown users), rehash, session creation, audit."""
    cfg = access_settings()
    conn = get_conn()
    keys = failure_keys(username)
    counts = [
        (r["key"], int(r["failures"]), r["window_start"])
        for r in users_repo.login_failures(conn, keys)
    ]
    wait = login_retry_after(counts, datetime.now(UTC), cfg)
    if wait:
        return LoginResult(retry_after=wait)
    user = users_repo.credentials(conn, username)
    if (
        not verify_password(user["password_hash"] if user else dummy_password_hash(), password)
        or not user
    ):
        record_failure(keys)
        return LoginResult()
    if password_needs_rehash(user["password_hash"]):
        users_repo.set_password_hash(conn, int(user["id"]), hash_password(password))
    users_repo.clear_login_failures(conn, keys[0])
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
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
    try:
        body = json_body()
    except ApiError:
        raise ApiError(401, "unauthorized", 'send {"username", "password"}') from None
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
