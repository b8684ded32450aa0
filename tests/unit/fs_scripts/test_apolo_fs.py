"""The mod_python3 hook against a tiny in-test HTTP server speaking the /v1/authorize contract.

The server is a stand-in on purpose: these tests are about the client's protocol handling
(keep-alive, reconnects, time budget, failure modes), which a real sidecar cannot be made to
misbehave for. tests/integration/test_fs_handler_live.py runs the same hook against the real one.
"""

from __future__ import annotations

import ast
import base64
import http.client
import importlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import pytest
from doubles.fs_session import (
    FS_SCRIPTS_DIR,
    FakeFreeswitchModule,
    FakeSession,
    add_fs_scripts_to_path,
    install_fake_freeswitch,
    remove_fake_freeswitch,
)
from doubles.raw_peer import raw_peer

add_fs_scripts_to_path()
import apolo_authorize  # noqa: E402
import apolo_fs  # noqa: E402

USER, PASSWORD = "freeswitch", "s3cret:with colon"


class FakeSidecar:
    """Answers POST /v1/authorize; knobs change how, ``requests`` records what arrived."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)
        self.status = 200
        self.raw: bytes | None = None
        self.answer: dict[str, Any] = {}
        self.delay = 0.0
        self.close_after_response = False
        self.lock = threading.Lock()

    def respond(self, request: dict[str, Any]) -> tuple[int, bytes]:
        if self.raw is not None:
            return self.status, self.raw
        answer = {
            "authorized": True,
            "reason": "authorized",
            "uuid": request.get("uuid"),
            "account": "100001",
            "max_duration": 120,
            "rate": {"prefix": "51", "name": "Peru", "rate_per_minute": "0.60",
                     "connection_fee": "0.00", "initial_increment": 60, "increment": 60},
            "reservation_id": 42,
            "sched_hangup_seconds": 119,
            **self.answer,
        }  # fmt: skip
        answer = {k: v for k, v in answer.items() if v is not ...}  # ... = leave the key out
        return self.status, json.dumps(answer).encode()


def _handler_for(state: FakeSidecar) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with state.lock:
                state.connections += 1

        def finish(self) -> None:
            super().finish()
            state.closed.release()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            with state.lock:
                state.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": parsed}
                )
            if state.delay:
                time.sleep(state.delay)
            status, payload = state.respond(parsed or {})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if state.close_after_response:
                self.close_connection = True  # hang up without saying Connection: close

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fs_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFreeswitchModule]:
    fake = install_fake_freeswitch()
    monkeypatch.setattr(apolo_fs, "freeswitch", fake)
    yield fake
    remove_fake_freeswitch()


@pytest.fixture
def sidecar(fs_module: FakeFreeswitchModule) -> Iterator[FakeSidecar]:
    state = FakeSidecar()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[assignment,method-assign]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    configure(state)
    yield state
    apolo_fs.configure(apolo_fs.Settings())
    server.shutdown()
    server.server_close()


def configure(state: FakeSidecar, **overrides: Any) -> apolo_fs.Settings:
    settings = {"url": state.url, "user": USER, "password": PASSWORD, "timeout_ms": 1000}  # type: ignore[attr-defined]
    return apolo_fs.configure(apolo_fs.Settings(**{**settings, **overrides}))


def call(args: str = "", shim: ModuleType | None = None, **variables: str) -> FakeSession:
    session = FakeSession(
        {"caller_id_number": "100001", "destination_number": "51987654321",
         "accountcode": "100001", **variables}
    )  # fmt: skip
    (shim or apolo_authorize).handler(session, args)
    return session


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ authorized / denied


def test_authorized_call_sets_variables_and_cutoff_from_answer(sidecar: FakeSidecar) -> None:
    session = call()
    v = session.variables
    assert v["apolo_result"] == "authorized"
    assert v["apolo_reason"] == "authorized"
    assert v["apolo_account"] == "100001"
    assert v["apolo_max_duration"] == "120"
    assert v["apolo_rate"] == "0.60"
    assert v["apolo_reservation_id"] == "42"
    assert v["execute_on_answer"] == "sched_hangup +119 ALLOTTED_TIMEOUT"
    assert session.hangups == [] and session.executed == []
    [req] = sidecar.requests
    assert req["path"] == "/v1/authorize"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["json"] == {"uuid": session.variables["uuid"], "caller": "100001",
                           "callee": "51987654321", "switch": None,
                           "variables": {"accountcode": "100001"}}  # fmt: skip


def test_the_switch_name_is_sent(sidecar: FakeSidecar) -> None:
    """The switch whose number rules apply: the global switchname, else the host name."""
    call(hostname="fs-host")
    call(hostname="fs-host", switchname="fs-a")
    assert [r["json"]["switch"] for r in sidecar.requests] == ["fs-host", "fs-a"]


def test_basic_auth_header_is_sent(sidecar: FakeSidecar) -> None:
    call()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert sidecar.requests[0]["headers"]["Authorization"] == f"Basic {token}"


def test_no_credentials_no_authorization_header(sidecar: FakeSidecar) -> None:
    configure(sidecar, user="", password="")
    call()
    assert "Authorization" not in sidecar.requests[0]["headers"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"sched_hangup_seconds": ..., "max_duration": 60}, "+59"),
        ({"sched_hangup_seconds": None, "max_duration": 60}, "+59"),
        ({"max_duration": 60, "sched_hangup_seconds": 7}, "+7"),
        ({"sched_hangup_seconds": ..., "max_duration": 1}, "+1"),
        ({"sched_hangup_seconds": 0, "max_duration": 1}, "+1"),
    ],
)
def test_sched_hangup_seconds_used_as_given_or_derived(
    sidecar: FakeSidecar, answer: dict[str, Any], expected: str
) -> None:
    sidecar.answer = answer
    session = call()
    assert session.variables["execute_on_answer"] == f"sched_hangup {expected} ALLOTTED_TIMEOUT"


def test_hangup_cause_is_configurable(sidecar: FakeSidecar) -> None:
    configure(sidecar, hangup_cause="NORMAL_UNSPECIFIED")
    session = call()
    assert session.variables["execute_on_answer"] == "sched_hangup +119 NORMAL_UNSPECIFIED"


def test_already_answered_channel_gets_sched_hangup_at_once(sidecar: FakeSidecar) -> None:
    session = FakeSession({"caller_id_number": "100001", "destination_number": "5199"},
                          answered=True)  # fmt: skip
    apolo_authorize.handler(session, "")
    assert session.executed == [("sched_hangup", "+119 ALLOTTED_TIMEOUT")]
    assert "execute_on_answer" not in session.variables


@pytest.mark.parametrize(
    "reason",
    ["account_not_found", "account_suspended", "no_rate", "insufficient_balance",
     "concurrent_limit"],
)  # fmt: skip
def test_denied_call_is_hung_up_with_reject_cause(sidecar: FakeSidecar, reason: str) -> None:
    sidecar.answer = {"authorized": False, "reason": reason, "max_duration": 0, "rate": None,
                      "reservation_id": None, "sched_hangup_seconds": None}  # fmt: skip
    session = call()
    assert session.variables["apolo_result"] == "denied"
    assert session.variables["apolo_reason"] == reason
    assert "apolo_reservation_id" not in session.variables
    assert "apolo_rate" not in session.variables
    assert "execute_on_answer" not in session.variables
    assert session.hangups == ["CALL_REJECTED"]


def test_reject_cause_is_configurable(sidecar: FakeSidecar) -> None:
    configure(sidecar, reject_cause="OUTGOING_CALL_BARRED")
    sidecar.answer = {"authorized": False, "reason": "no_rate"}
    assert call().hangups == ["OUTGOING_CALL_BARRED"]


def test_logs_through_freeswitch_console(
    sidecar: FakeSidecar, fs_module: FakeFreeswitchModule
) -> None:
    session = call()
    assert any(
        level == "info" and session.variables["uuid"] in msg and "authorized" in msg
        for level, msg in fs_module.logs
    )
    assert all(msg.endswith("\n") for _, msg in fs_module.logs)


# ------------------------------------------------------------------ request contents


IDENTITY = {
    "accountcode": "100001", "sip_authorized": "true", "sip_auth_username": "1001",
    "sip_auth_realm": "pbx.example", "domain_name": "pbx.example",
    "sip_network_ip": "203.0.113.7", "sip_received_ip": "203.0.113.7",
    "sip_h_X-Billing-Account": "100002",
}  # fmt: skip


def test_every_identity_variable_is_sent_and_nothing_else(sidecar: FakeSidecar) -> None:
    call(**IDENTITY, sip_from_user="100009", sip_h_X_Other="x", billing_account="100003")
    assert sidecar.requests[0]["json"]["variables"] == IDENTITY


def test_the_hook_sends_what_the_sidecar_reads() -> None:
    from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES

    assert apolo_fs.IDENTITY_VARIABLES == IDENTITY_VARIABLES


def test_the_hook_cannot_pick_the_account(
    sidecar: FakeSidecar, fs_module: FakeFreeswitchModule
) -> None:
    session = call("account=777")
    sent = sidecar.requests[0]["json"]
    sent_values = json.dumps({k: v for k, v in sent.items() if k != "uuid"})  # uuid is random
    assert "account" not in sent and "777" not in sent_values
    assert any(level == "warning" and "account=" in msg for level, msg in fs_module.logs)
    assert session.variables["apolo_account"] == "100001"  # what the sidecar answered


def test_missing_variables_are_left_out(sidecar: FakeSidecar) -> None:
    session = FakeSession({"caller_id_number": "100001", "destination_number": "5198"})
    apolo_authorize.handler(session, "")
    assert sidecar.requests[0]["json"]["variables"] == {}


def test_uuid_falls_back_to_session_get_uuid(sidecar: FakeSidecar) -> None:
    session = FakeSession({"caller_id_number": "100001", "destination_number": "5198"})
    del session.variables["uuid"]
    apolo_authorize.handler(session, "")
    assert sidecar.requests[0]["json"]["uuid"] == session.get_uuid()
    assert session.variables["apolo_result"] == "authorized"


# ------------------------------------------------------------------ keep-alive


def test_keepalive_connection_reused_across_calls_and_module_reload(
    sidecar: FakeSidecar,
) -> None:
    helper_id = id(apolo_fs)
    for _ in range(5):
        assert call().variables["apolo_result"] == "authorized"
    [conn] = apolo_fs._client.idle
    # What mod_python3 does on every call: reload the dialplan-named module. The helper stays.
    shim = importlib.reload(apolo_authorize)
    assert call(shim=shim).variables["apolo_result"] == "authorized"
    assert id(importlib.import_module("apolo_fs")) == helper_id
    assert apolo_fs._client.idle == [conn]
    assert len(sidecar.requests) == 6
    assert sidecar.connections == 1


def test_reconnects_after_server_closes_idle_keepalive(sidecar: FakeSidecar) -> None:
    sidecar.close_after_response = True
    for _ in range(3):
        assert call().variables["apolo_result"] == "authorized"
        assert sidecar.closed.acquire(timeout=2)
    assert len(sidecar.requests) == 3
    assert sidecar.connections == 3


def test_retries_once_when_a_dead_keepalive_is_only_found_by_sending(
    sidecar: FakeSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apolo_fs, "_peer_closed", lambda sock: False)
    exchanges: list[BaseException | None] = []
    real_exchange = apolo_fs.Client._exchange

    def spy(self: apolo_fs.Client, *args: Any) -> tuple[int, bytes]:
        try:
            result = real_exchange(self, *args)
        except BaseException as exc:
            exchanges.append(exc)
            raise
        exchanges.append(None)
        return result

    monkeypatch.setattr(apolo_fs.Client, "_exchange", spy)
    sidecar.close_after_response = True
    assert call().variables["apolo_result"] == "authorized"
    assert sidecar.closed.acquire(timeout=2)
    second = call()
    assert second.variables["apolo_result"] == "authorized"
    assert sidecar.requests[-1]["json"]["uuid"] == second.variables["uuid"]
    assert len(sidecar.requests) == 2  # the send on the dead socket never reached the server
    assert sidecar.connections == 2
    assert exchanges[0] is None and exchanges[2] is None
    assert isinstance(exchanges[1], ConnectionError | http.client.BadStatusLine)


def test_concurrent_calls_get_their_own_connections_then_reuse_them(
    sidecar: FakeSidecar,
) -> None:
    sidecar.delay = 0.1
    sessions: list[FakeSession] = []

    def one() -> None:
        sessions.append(call())

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(sessions) == 6
    for s in sessions:
        assert s.variables["apolo_result"] == "authorized"
    assert {r["json"]["uuid"] for r in sidecar.requests} == {s.variables["uuid"] for s in sessions}
    opened = sidecar.connections
    assert 1 <= opened <= 6 and len(apolo_fs._client.idle) == opened
    sidecar.delay = 0
    for _ in range(4):
        call()
    assert sidecar.connections == opened


# ------------------------------------------------------------------ failures


def test_timeout_fails_closed_within_budget(sidecar: FakeSidecar) -> None:
    configure(sidecar, timeout_ms=200)
    sidecar.delay = 0.8
    started = time.monotonic()
    session = call()
    assert time.monotonic() - started < 0.6
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_reason"] == "sidecar_unavailable"
    assert session.variables["apolo_error"] == "timeout"
    assert session.hangups == ["CALL_REJECTED"]
    assert "execute_on_answer" not in session.variables
    # The timed-out connection was dropped: the late answer cannot be read by the next call.
    sidecar.delay = 0
    nxt = call()
    assert nxt.variables["apolo_result"] == "authorized"
    assert sidecar.requests[-1]["json"]["uuid"] == nxt.variables["uuid"]


@pytest.mark.parametrize(
    ("status", "raw", "answer", "error"),
    [
        (500, b'{"authorized": true}', None, "http_500"),
        (401, b'{"error": "unauthorized"}', None, "http_401"),
        (200, b"<html>not json</html>", None, "bad_json"),
        (200, b"[true]", None, "bad_answer"),
        (200, None, {"authorized": "yes"}, "bad_answer"),
        (200, None, {"uuid": "someone-else"}, "uuid_mismatch"),
        (200, None, {"sched_hangup_seconds": ..., "max_duration": ...}, "no_duration"),
    ],
)
def test_unusable_answer_fails_closed(
    sidecar: FakeSidecar, status: int, raw: bytes | None, answer: dict[str, Any] | None,
    error: str,
) -> None:  # fmt: skip
    sidecar.status, sidecar.raw, sidecar.answer = status, raw, answer or {}
    session = call()
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_reason"] == "sidecar_unavailable"
    assert session.variables["apolo_error"] == error
    assert session.hangups == ["CALL_REJECTED"]
    assert "execute_on_answer" not in session.variables


def test_connection_refused_fails_closed(fs_module: FakeFreeswitchModule) -> None:
    apolo_fs.configure(apolo_fs.Settings(url=f"http://127.0.0.1:{closed_port()}"))
    try:
        session = call()
    finally:
        apolo_fs.configure(apolo_fs.Settings())
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_error"] == "connection_refused"
    assert session.hangups == ["CALL_REJECTED"]
    assert any(level == "err" for level, _ in fs_module.logs)


@pytest.mark.parametrize(
    ("mode", "error"),
    [("hangs_up", "connection_error"), ("silent", "timeout"), ("dribbles", "timeout")],
)
def test_a_sick_sidecar_fails_closed_within_the_whole_budget(
    fs_module: FakeFreeswitchModule, mode: str, error: str
) -> None:
    # "dribbles" answers a whole 200 one byte every 50 ms: each read is quick, the answer
    # is not, and only a budget over the whole exchange stops it
    with raw_peer(mode, dribble_interval=0.05) as url:
        apolo_fs.configure(apolo_fs.Settings(url=url, timeout_ms=400))
        started = time.monotonic()
        try:
            session = call()
        finally:
            apolo_fs.configure(apolo_fs.Settings())
    assert time.monotonic() - started < 0.7
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_error"] == error
    assert session.hangups == ["CALL_REJECTED"]


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "http://127.0.0.1:port"])
def test_bad_sidecar_url_fails_closed_instead_of_breaking_import(url: str) -> None:
    apolo_fs.configure(apolo_fs.Settings(url=url))
    try:
        session = call()
    finally:
        apolo_fs.configure(apolo_fs.Settings())
    assert session.variables["apolo_error"] == "bad_url"
    assert session.hangups == ["CALL_REJECTED"]


def test_fail_open_lets_the_call_through_with_a_capped_cutoff(sidecar: FakeSidecar) -> None:
    configure(sidecar, fail_open=True, fail_open_max_seconds=120)
    sidecar.status, sidecar.raw = 503, b"down"
    session = call()
    assert session.variables["apolo_result"] == "authorized"
    assert session.variables["apolo_reason"] == "fail_open"
    assert session.variables["apolo_max_duration"] == "120"
    assert session.variables["apolo_error"] == "http_503"
    assert session.variables["execute_on_answer"] == "sched_hangup +120 ALLOTTED_TIMEOUT"
    assert session.hangups == []


def test_fail_open_default_cap_when_unreachable(fs_module: FakeFreeswitchModule) -> None:
    env = {"APOLO_SIDECAR_URL": f"http://127.0.0.1:{closed_port()}", "APOLO_FAIL_OPEN": "true"}
    apolo_fs.configure(apolo_fs.Settings.from_env(env))
    try:
        session = call()
    finally:
        apolo_fs.configure(apolo_fs.Settings())
    assert session.variables["execute_on_answer"] == "sched_hangup +300 ALLOTTED_TIMEOUT"
    assert session.hangups == []


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415])
def test_a_4xx_fails_closed_even_when_fail_open(sidecar: FakeSidecar, status: int) -> None:
    """Wrong credentials or a request the sidecar refuses is a configuration error, not an
    outage: failing open on it would let every call through unbilled."""
    configure(sidecar, fail_open=True)
    sidecar.status, sidecar.raw = status, b'{"error": {}}'
    session = call()
    assert session.variables["apolo_error"] == f"http_{status}"
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_reason"] == "sidecar_unavailable"
    assert session.hangups == ["CALL_REJECTED"]
    assert "execute_on_answer" not in session.variables


def test_fail_open_never_overrides_a_denial(sidecar: FakeSidecar) -> None:
    configure(sidecar, fail_open=True)
    sidecar.answer = {"authorized": False, "reason": "insufficient_balance"}
    session = call()
    assert session.variables["apolo_result"] == "denied"
    assert session.hangups == ["CALL_REJECTED"]


def test_internal_error_fails_closed_even_when_fail_open(sidecar: FakeSidecar) -> None:
    configure(sidecar, fail_open=True)

    class Broken(FakeSession):
        def answered(self) -> bool:
            raise RuntimeError("swig says no")

    session = Broken({"caller_id_number": "100001", "destination_number": "5198"})
    apolo_authorize.handler(session, "")
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_reason"] == "internal_error"
    assert session.hangups == ["CALL_REJECTED"]


# ------------------------------------------------------------------ settings / module shape


def test_settings_defaults_and_environment() -> None:
    assert apolo_fs.Settings.from_env({}) == apolo_fs.Settings(
        url="http://127.0.0.1:8080", user="", password="", timeout_ms=1500, fail_open=False,
        fail_open_max_seconds=300, reject_cause="CALL_REJECTED", hangup_cause="ALLOTTED_TIMEOUT",
    )  # fmt: skip
    env = {
        "APOLO_SIDECAR_URL": "https://billing.example:8443/apolo", "APOLO_FS_USER": "fs",
        "APOLO_FS_PASSWORD": "pw", "APOLO_TIMEOUT_MS": "250", "APOLO_FAIL_OPEN": "TRUE",
        "APOLO_FAIL_OPEN_MAX_SECONDS": "60", "APOLO_REJECT_CAUSE": "USER_BUSY",
        "APOLO_HANGUP_CAUSE": "NORMAL_CLEARING",
    }  # fmt: skip
    s = apolo_fs.Settings.from_env(env)
    assert (s.url, s.user, s.password, s.timeout_ms) == (env["APOLO_SIDECAR_URL"], "fs", "pw", 250)
    assert (s.fail_open, s.fail_open_max_seconds) == (True, 60)
    assert (s.reject_cause, s.hangup_cause) == ("USER_BUSY", "NORMAL_CLEARING")
    client = apolo_fs.Client(s)
    assert (client.https, client.host, client.port) == (True, "billing.example", 8443)
    assert client.path == "/apolo/v1/authorize"
    assert apolo_fs.Settings.from_env({"APOLO_TIMEOUT_MS": "soon"}).timeout_ms == 1500
    assert apolo_fs.Settings.from_env({"APOLO_FAIL_OPEN": "no"}).fail_open is False


def test_shim_has_nothing_but_the_handler_at_module_level() -> None:
    tree = ast.parse((FS_SCRIPTS_DIR / "apolo_authorize.py").read_text())
    body = [node for node in tree.body if not isinstance(node, ast.Expr)]  # docstring
    [handler] = body
    assert isinstance(handler, ast.FunctionDef) and handler.name == "handler"
    assert [a.arg for a in handler.args.args] == ["session", "args"]


def test_helper_imports_only_the_standard_library() -> None:
    import sys

    tree = ast.parse((FS_SCRIPTS_DIR / "apolo_fs.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert names - {"freeswitch", "__future__"} <= set(sys.stdlib_module_names)
