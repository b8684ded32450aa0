"""Authentication, roles and the FreeSWITCH source-address allowlist.

Admin/API routes take bearer tokens (random 256-bit strings, stored as SHA-256);
HTTP basic auth with APOLO_FS_USER / APOLO_FS_PASSWORD is the switch role. ``/freeswitch/*``
(mod_xml_cdr, mod_xml_curl) takes those basic-auth credentials only: a token, even of the
switch role (``apolo cucm watch`` holds one for ``/cucm/cdr``), is refused there.
User passwords are never accepted by the API: they are for the dashboard login only.

Allowlist (``APOLO_FS_ALLOW``, comma-separated CIDRs; empty = any address): checked for
every ``/freeswitch/*`` request (before its credentials) and for every request that
authenticates with the switch role. The address checked is the direct TCP peer. Behind a
reverse proxy that peer is the proxy, so list the proxy in ``APOLO_TRUSTED_PROXIES``: only
then is ``X-Forwarded-For`` read, right to left, skipping trusted proxies, and the first
untrusted address is the client's. A header from an untrusted peer is ignored, so a client
cannot forge its address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, g, request

from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.repo import tokens as token_repo
from sidecar.repo import users as users_repo

ROLES = ("admin", "operator", "viewer", "switch")
SESSION_COOKIE = "apolo_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_ROLES = ("admin", "operator", "viewer")
SWITCH = "switch"
# routes FreeSWITCH itself calls: its basic-auth credentials only, never a token
FREESWITCH_PREFIX = "/freeswitch/"
F = TypeVar("F", bound=Callable[..., Any])
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AccessSettings:
    # APOLO_FS_ALLOW: CIDRs FreeSWITCH may connect from; empty tuple = no restriction
    fs_allow: tuple[Network, ...] = ()
    # APOLO_TRUSTED_PROXIES: CIDRs of reverse proxies whose X-Forwarded-For is believed
    trusted_proxies: tuple[Network, ...] = ()
    # APOLO_SESSION_HOURS: a dashboard session ends this long after login
    session_hours: float = 12.0
    # APOLO_SESSION_IDLE_MINUTES: ... or after this long without a request
    session_idle_minutes: float = 60.0
    # APOLO_SESSION_COOKIE_SECURE: send the session cookie over HTTPS only
    cookie_secure: bool = True
    # APOLO_LOGIN_MAX_FAILURES / _PER_ADDRESS: failed logins allowed per window, per
    # username and per client address, before logins are refused (429) until it ends
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    # APOLO_LOGIN_WINDOW_SECONDS: the window failed logins are counted in
    login_window_seconds: int = 900


def parse_networks(raw: str, variable: str) -> tuple[Network, ...]:
    networks = []
    for item in raw.replace(" ", ",").split(","):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{variable}: {item!r} is not an address or CIDR") from None
    return tuple(networks)


def load_access_settings(environ: Mapping[str, str]) -> AccessSettings:
    defaults = AccessSettings()

    def number(variable: str, default: float) -> float:
        raw = environ.get(variable) or ""
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ValueError(f"{variable}: {raw!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"{variable} must be positive")
        return value

    secure = (environ.get("APOLO_SESSION_COOKIE_SECURE") or "true").strip().lower()
    return AccessSettings(
        fs_allow=parse_networks(environ.get("APOLO_FS_ALLOW", ""), "APOLO_FS_ALLOW"),
        trusted_proxies=parse_networks(
            environ.get("APOLO_TRUSTED_PROXIES", ""), "APOLO_TRUSTED_PROXIES"
        ),
        session_hours=number("APOLO_SESSION_HOURS", defaults.session_hours),
        session_idle_minutes=number("APOLO_SESSION_IDLE_MINUTES", defaults.session_idle_minutes),
        cookie_secure=secure not in ("0", "false", "no", "off"),
        login_max_failures=int(number("APOLO_LOGIN_MAX_FAILURES", defaults.login_max_failures)),
        login_max_failures_per_address=int(
            number("APOLO_LOGIN_MAX_FAILURES_PER_ADDRESS", defaults.login_max_failures_per_address)
        ),
        login_window_seconds=int(
            number("APOLO_LOGIN_WINDOW_SECONDS", defaults.login_window_seconds)
        ),
    )


def access_settings() -> AccessSettings:
    """The app's access settings, read from the environment on first use (tests may put
    their own in ``app.extensions["apolo_access"]``)."""
    found: AccessSettings | None = current_app.extensions.get("apolo_access")
    if found is None:
        found = load_access_settings(os.environ)
        current_app.extensions["apolo_access"] = found
    return found


def _address(raw: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((raw or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> Address | None:
    """The client's address: the peer, or, when the peer is a trusted proxy, the rightmost
    X-Forwarded-For entry that is not a trusted proxy. None when unparseable."""
    address = _address(peer)
    if address is None or not forwarded_for or not _within(address, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _address(hop)
        if hop_address is None:
            return None
        if not _within(hop_address, trusted):
            return hop_address
        address = hop_address
    return address


def check_switch_source() -> None:
    """403 unless the request comes from an address APOLO_FS_ALLOW lists (when set)."""
    cfg = access_settings()
    if not cfg.fs_allow:
        return
    address = client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For"), cfg.trusted_proxies
    )
    if address is None or not _within(address, cfg.fs_allow):
        raise ApiError(
            403, "address_not_allowed", "this address may not use FreeSWITCH-facing routes"
        )


def _origin_key(scheme: str, netloc: str) -> tuple[str, str]:
    host = netloc.lower()
    for default in (":80", ":443"):
        if host.endswith(default) and default == {"http": ":80", "https": ":443"}.get(scheme):
            host = host[: -len(default)]
    return scheme, host


def cross_site() -> bool:
    """The browser says this request comes from another site: ``Sec-Fetch-Site:
    cross-site``, or an ``Origin`` (``null`` included) whose host is not this one. A request
    without either (a script, curl) is not cross-site. The scheme is not compared: behind a
    TLS-terminating proxy the browser's https origin reaches the sidecar as plain http."""
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return True
    theirs = _origin_key(parts.scheme, parts.netloc)[1]
    ours = _origin_key(parts.scheme, request.host)[1]
    return not hmac.compare_digest(theirs.encode(), ours.encode())


_hasher = PasswordHasher()  # argon2id with argon2-cffi's RFC 9106 low-memory defaults
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


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
    if header:
        raise ApiError(401, "unauthorized", "unsupported authorization scheme")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        session = users_repo.active_session(
            get_conn(), hash_token(cookie), access_settings().session_idle_minutes
        )
        if session is None:
            raise ApiError(401, "unauthorized", "the session has ended; log in again")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token") or ""
            if not hmac.compare_digest(sent.encode(), session["csrf_token"].encode()):
                raise ApiError(403, "csrf_failed", f"missing or wrong {CSRF_HEADER}")
        g.session = session
        return f"user:{session['username']}", session["role"]
    raise ApiError(401, "unauthorized", "credentials required")


def require(*roles: str) -> Callable[[F], F]:
    """Allow the listed roles; everything else is 401 (no credentials) or 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.path.startswith(FREESWITCH_PREFIX):
                check_switch_source()
                if request.headers.get("Authorization", "")[:6].lower() != "basic ":
                    raise ApiError(
                        401, "unauthorized",
                        "FreeSWITCH routes take APOLO_FS_USER / APOLO_FS_PASSWORD (HTTP basic)",
                        {"scheme": 'Basic realm="apolo"'},
                    )  # fmt: skip
            actor, role = authenticate()
            if role not in roles:
                raise ApiError(403, "forbidden", f"role {role!r} may not do this")
            if role == SWITCH:
                check_switch_source()
            g.actor = actor
            g.role = role
            return view(*args, **kwargs)

        wrapper.apolo_roles = roles  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
