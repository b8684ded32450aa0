"""Apolo call authorization inside FreeSWITCH: the cached helper behind ``apolo_authorize``.

Standard library only: it runs in FreeSWITCH's embedded CPython (mod_python3). Settings are read
once, from the FreeSWITCH process environment, when this module is first imported:

    APOLO_SIDECAR_URL            http://127.0.0.1:8080  sidecar base URL (http or https)
    APOLO_FS_USER                (empty)                HTTP basic auth user for the sidecar
    APOLO_FS_PASSWORD            (empty)                HTTP basic auth password
    APOLO_TIMEOUT_MS             1500                   budget for one authorization, retry included
    APOLO_FAIL_OPEN              false                  true: let calls through if sidecar is down
    APOLO_FAIL_OPEN_MAX_SECONDS  300                    sched_hangup cut-off for such calls
    APOLO_REJECT_CAUSE           CALL_REJECTED          hangup cause: denied / failed-closed calls
    APOLO_HANGUP_CAUSE           ALLOTTED_TIMEOUT       cause used when the allowance runs out

The hook never chooses who pays: it sends the call and the channel variables that say who is
calling (IDENTITY_VARIABLES), and the sidecar applies its identity rule (see dialplan/README.md).

Channel variables set on every call: apolo_result (authorized | denied | error), apolo_reason and,
when known, apolo_account, apolo_max_duration, apolo_rate (rate_per_minute), apolo_reservation_id,
apolo_error (what failed). An authorized call gets ``execute_on_answer=sched_hangup +N <cause>`` so
the allowance counts from answer; a denied one is hung up with the reject cause.

apolo_error is one of the codes both hooks share (dialplan/README.md lists them): bad_url,
connection_refused, timeout (APOLO_TIMEOUT_MS spent: it bounds the whole authorization, connect,
send, answer and the one retry on a dead keep-alive included; not a name lookup), connection_error,
http_<status>, bad_json, bad_answer, uuid_mismatch, no_duration.

Keep-alive connections live in a small lock-protected pool, deliberately not in threading.local:
mod_python3 runs every invocation on a fresh PyThreadState that it clears afterwards, and clearing
it empties every threading.local, so per-thread storage would open a new TCP connection per call.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import math
import os
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

try:  # exists only inside FreeSWITCH (mod_python3 imports it before calling the handler)
    freeswitch: Any = importlib.import_module("freeswitch")
except ImportError:
    freeswitch = None

VAR_UUID = "uuid"
VAR_CALLER = "caller_id_number"
VAR_CALLEE = "destination_number"
# the source whose number rules apply: the CDR's switchname (switch.conf.xml "switchname",
# else the host name); a channel variable falls back to the global one of the same name
VARS_SWITCH = ("switchname", "hostname")
VAR_EXECUTE_ON_ANSWER = "execute_on_answer"
# Sent as they are; which of them the caller can forge is the sidecar's business
# (sidecar/freeswitch/caller_facts.py holds the same list).
IDENTITY_VARIABLES = (
    "accountcode",
    "sip_authorized",
    "sip_auth_username",
    "sip_auth_realm",
    "domain_name",
    "sip_network_ip",
    "sip_received_ip",
    "sip_h_X-Billing-Account",
)

AUTHORIZE_PATH = "/v1/authorize"
MAX_IDLE_CONNECTIONS = 16
# Only these mean "the kept-alive socket had died": retrying on a new one is safe.
_STALE_ERRORS = (ConnectionError, http.client.BadStatusLine)


class SidecarError(Exception):
    """The sidecar could not give a usable answer; ``str(exc)`` is a short code."""


def error_code(exc: BaseException) -> str:
    """The ``apolo_error`` code of a failed authorization (the same codes as the Lua hook)."""
    if isinstance(exc, SidecarError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, TimeoutError):  # socket.timeout too, and the budget running out
        return "timeout"
    return "connection_error"  # reset, closed without an answer, unreachable, TLS, DNS


@dataclass(frozen=True)
class Settings:
    url: str = "http://127.0.0.1:8080"
    user: str = ""
    password: str = ""
    timeout_ms: int = 1500
    fail_open: bool = False
    fail_open_max_seconds: int = 300
    reject_cause: str = "CALL_REJECTED"
    hangup_cause: str = "ALLOTTED_TIMEOUT"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        def positive(name: str, default: int) -> int:
            try:
                return max(1, int(text(name, str(default))))
            except ValueError:
                _log("warning", f"{name} is not a whole number, using {default}")
                return default

        return cls(
            url=text("APOLO_SIDECAR_URL", d.url),
            user=env.get("APOLO_FS_USER", ""),
            password=env.get("APOLO_FS_PASSWORD", ""),
            timeout_ms=positive("APOLO_TIMEOUT_MS", d.timeout_ms),
            fail_open=text("APOLO_FAIL_OPEN", "false").lower() in {"1", "true", "yes", "on"},
            fail_open_max_seconds=positive("APOLO_FAIL_OPEN_MAX_SECONDS", d.fail_open_max_seconds),
            reject_cause=text("APOLO_REJECT_CAUSE", d.reject_cause),
            hangup_cause=text("APOLO_HANGUP_CAUSE", d.hangup_cause),
        )


@dataclass(frozen=True)
class Decision:
    authorized: bool
    reason: str
    account: str | None
    max_duration: int | None
    rate: str | None
    reservation_id: int | None
    sched_seconds: int | None


class _BudgetSocket(socket.socket):
    """A socket whose every send and receive waits at most until ``deadline``: the budget
    holds for the whole exchange, even against an answer that trickles in byte by byte
    (a plain socket timeout would start again at each byte)."""

    deadline = math.inf

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.settimeout(_remaining(self.deadline))
        super().sendall(data, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(_remaining(self.deadline))
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.settimeout(_remaining(self.deadline))
        return super().recv(bufsize, flags)


class _BudgetConnection(http.client.HTTPConnection):
    """Plain HTTP over a :class:`_BudgetSocket` (https keeps the per-step timeouts)."""

    deadline = math.inf

    def connect(self) -> None:
        super().connect()  # bounded by self.timeout, the budget left
        plain = self.sock
        self.sock = _BudgetSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        self.sock.deadline = self.deadline


class Client:
    """POSTs to /v1/authorize over pooled keep-alive connections, within one time budget."""

    def __init__(self, settings: Settings) -> None:
        parts = urllib.parse.urlsplit(settings.url)
        self.error = "" if parts.scheme in ("http", "https") and parts.hostname else "bad_url"
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:  # "host:abc": fail each call (honouring fail-open), not the import
            port, self.error = None, "bad_url"
        self.port = port or (443 if self.https else 80)
        self.path = parts.path.rstrip("/") + AUTHORIZE_PATH
        self.timeout = settings.timeout_ms / 1000
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.user or settings.password:
            token = base64.b64encode(f"{settings.user}:{settings.password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def post(self, payload: bytes) -> tuple[int, bytes]:
        if self.error:
            raise SidecarError(self.error)
        deadline = time.monotonic() + self.timeout
        conn = self._checkout()
        try:
            for attempt in (1, 2):
                reused = conn.sock is not None
                try:
                    status, body = self._exchange(conn, payload, deadline)
                except _STALE_ERRORS:
                    conn.close()
                    if not reused or attempt == 2:
                        raise
                    continue
                self._checkin(conn)
                return status, body
            raise AssertionError("unreachable")
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()

    def _exchange(
        self, conn: http.client.HTTPConnection, payload: bytes, deadline: float
    ) -> tuple[int, bytes]:
        conn.timeout = _remaining(deadline)  # the connect, when there is one to make
        if isinstance(conn, _BudgetConnection):
            conn.deadline = deadline
            if conn.sock is not None:
                conn.sock.deadline = deadline
        elif conn.sock is not None:
            conn.sock.settimeout(conn.timeout)
        conn.request("POST", self.path, body=payload, headers=self.headers)
        if conn.sock is not None and not isinstance(conn, _BudgetConnection):
            conn.sock.settimeout(_remaining(deadline))
        response = conn.getresponse()
        return response.status, response.read()

    def _checkout(self) -> http.client.HTTPConnection:
        with self.lock:
            conn = self.idle.pop() if self.idle else None
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else _BudgetConnection
            return cls(self.host, self.port, timeout=self.timeout)
        if conn.sock is not None and _peer_closed(conn.sock):
            conn.close()  # the server dropped the idle keep-alive; this object reconnects
        return conn

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            if len(self.idle) < MAX_IDLE_CONNECTIONS:
                self.idle.append(conn)
                return
        conn.close()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("authorization time budget used up")
    return left


def _peer_closed(sock: Any) -> bool:
    """An idle keep-alive socket that is readable has been closed (or desynced) by the server."""
    poller = select.poll()  # not select.select: FreeSWITCH easily holds fds above 1024
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _log(level: str, message: str) -> None:
    console_log = getattr(freeswitch, "consoleLog", None)
    if console_log is not None:
        console_log(level, f"[apolo] {message}\n")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _decide(request: dict[str, Any], status: int, body: bytes) -> Decision:
    if status != 200:
        raise SidecarError(f"http_{status}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise SidecarError("bad_json") from exc
    if not isinstance(data, dict) or not isinstance(data.get("authorized"), bool):
        raise SidecarError("bad_answer")
    if data.get("uuid") not in (None, request["uuid"]):
        raise SidecarError("uuid_mismatch")
    max_duration = _int(data.get("max_duration"))
    seconds = _int(data.get("sched_hangup_seconds"))
    if seconds is None and max_duration is not None:
        seconds = max_duration - 1
    if data["authorized"] and seconds is None:
        raise SidecarError("no_duration")
    rate = data.get("rate")
    account = data.get("account")
    return Decision(
        authorized=data["authorized"],
        reason=str(data.get("reason") or ("authorized" if data["authorized"] else "denied")),
        account=account if isinstance(account, str) else None,
        max_duration=max_duration,
        rate=str(rate["rate_per_minute"])
        if isinstance(rate, dict) and "rate_per_minute" in rate
        else None,
        reservation_id=_int(data.get("reservation_id")),
        sched_seconds=None if seconds is None else max(1, seconds),  # "+0" hangs up at once
    )


def _set(session: Any, name: str, value: object) -> None:
    if value is not None:
        session.setVariable(name, str(value))


def _schedule_cutoff(session: Any, seconds: int, cause: str) -> None:
    if session.answered():  # execute_on_answer would never fire now
        session.execute("sched_hangup", f"+{seconds} {cause}")
    else:
        session.setVariable(VAR_EXECUTE_ON_ANSWER, f"sched_hangup +{seconds} {cause}")


def _parse_args(args: str | None) -> dict[str, str]:
    pairs = (token.partition("=") for token in (args or "").split())
    return {key.lower(): value for key, sep, value in pairs if sep and value}


def _var(session: Any, name: str) -> str | None:
    value = session.getVariable(name)
    return value if value else None


def _identity_variables(session: Any) -> dict[str, str]:
    found = {}
    for name in IDENTITY_VARIABLES:
        value = _var(session, name)
        if value is not None:
            found[name] = value
    return found


def authorize_session(session: Any, args: str | None = "") -> None:
    """Ask the sidecar whether this call may proceed and act on the answer. Never raises."""
    cfg, client, started = _settings, _client, time.monotonic()
    request: dict[str, Any] = {}
    try:
        request = {
            "uuid": _var(session, VAR_UUID) or str(session.get_uuid()),
            "caller": _var(session, VAR_CALLER) or "",
            "callee": _var(session, VAR_CALLEE) or "",
            "variables": _identity_variables(session),
            "switch": _var(session, VARS_SWITCH[0]) or _var(session, VARS_SWITCH[1]),
        }
        if "account" in _parse_args(args):
            _log("warning", f"{request['uuid']}: 'account=' is ignored; the sidecar decides")
        try:
            decision = _decide(request, *client.post(json.dumps(request).encode()))
        except (OSError, http.client.HTTPException, SidecarError) as exc:
            _sidecar_failed(session, cfg, request, error_code(exc))
            return
        result = "authorized" if decision.authorized else "denied"
        _set(session, "apolo_result", result)
        _set(session, "apolo_reason", decision.reason)
        _set(session, "apolo_account", decision.account)
        _set(session, "apolo_max_duration", decision.max_duration)
        _set(session, "apolo_rate", decision.rate)
        _set(session, "apolo_reservation_id", decision.reservation_id)
        took = (time.monotonic() - started) * 1000
        _log(
            "info",
            f"{request['uuid']} {request['caller']} -> {request['callee']}: {result} "
            f"({decision.reason}, {decision.sched_seconds}s) in {took:.1f} ms",
        )
        if decision.authorized and decision.sched_seconds is not None:
            _schedule_cutoff(session, decision.sched_seconds, cfg.hangup_cause)
        else:
            session.hangup(cfg.reject_cause)
    except Exception as exc:  # a bug here must not let a call through unbilled
        _log("err", f"{request.get('uuid', '?')}: internal error {exc!r}; rejecting")
        session.setVariable("apolo_result", "error")
        session.setVariable("apolo_reason", "internal_error")
        session.hangup(cfg.reject_cause)


def _may_fail_open(error: str) -> bool:
    """A 4xx is the sidecar answering that the request itself is wrong (credentials, a
    malformed call): a configuration error, never "the sidecar cannot answer"."""
    return not (error.startswith("http_4") and len(error) == 8)


def _sidecar_failed(session: Any, cfg: Settings, request: dict[str, Any], error: str) -> None:
    _set(session, "apolo_error", error)
    if cfg.fail_open and _may_fail_open(error):
        _log(
            "warning",
            f"{request['uuid']}: sidecar unavailable ({error}); fail-open, "
            f"cut off after {cfg.fail_open_max_seconds}s",
        )
        _set(session, "apolo_result", "authorized")
        _set(session, "apolo_reason", "fail_open")
        _set(session, "apolo_max_duration", cfg.fail_open_max_seconds)
        _schedule_cutoff(session, cfg.fail_open_max_seconds, cfg.hangup_cause)
        return
    _log("err", f"{request['uuid']}: sidecar unavailable ({error}); rejecting")
    _set(session, "apolo_result", "error")
    _set(session, "apolo_reason", "sidecar_unavailable")
    session.hangup(cfg.reject_cause)


def configure(settings: Settings | None = None) -> Settings:
    """(Re)load settings (from the environment when none are given) and drop pooled connections."""
    global _settings, _client
    old = globals().get("_client")
    _settings = Settings.from_env() if settings is None else settings
    _client = Client(_settings)
    if old is not None:
        old.close()
    return _settings


_settings: Settings
_client: Client
configure()
