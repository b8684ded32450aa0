"""Authentication and roles.

Admin/API routes take bearer tokens (random 256-bit strings, stored as SHA-256);
FreeSWITCH-facing routes take HTTP basic auth with APOLO_FS_USER / APOLO_FS_PASSWORD.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.repo import tokens as token_repo

ROLES = ("admin", "operator", "viewer", "switch")
SWITCH = "switch"
F = TypeVar("F", bound=Callable[..., Any])


def new_token() -> str:
    return "apo_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _basic_credentials(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _switch_ok(user: str, password: str) -> bool:
    settings = current_app.config["SETTINGS"]
    if not settings.fs_password:
        return False
    user_ok = hmac.compare_digest(user.encode(), settings.fs_user.encode())
    password_ok = hmac.compare_digest(password.encode(), settings.fs_password.encode())
    return user_ok and password_ok


def authenticate() -> tuple[str, str]:
    """(actor, role) of the request, or ApiError 401."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
        found = token_repo.find_active(get_conn(), hash_token(token)) if token else None
        if found is None:
            raise ApiError(401, "unauthorized", "invalid or revoked token")
        return f"token:{found['name']}", found["role"]
    if header[:6].lower() == "basic ":
        creds = _basic_credentials(header)
        if creds is None or not _switch_ok(*creds):
            raise ApiError(
                401, "unauthorized", "bad credentials", {"scheme": 'Basic realm="apolo"'}
            )
        return "freeswitch", SWITCH
    raise ApiError(401, "unauthorized", "credentials required")


def require(*roles: str) -> Callable[[F], F]:
    """Allow the listed roles; everything else is 401 (no credentials) or 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor, role = authenticate()
            if role not in roles:
                raise ApiError(403, "forbidden", f"role {role!r} may not do this")
            g.actor = actor
            g.role = role
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
