"""fs_scripts/apolo_authorize.lua under every Lua found here (skipped when there is none).

Most cases hand the script canned mod_curl output (mod_curl's ``json`` shape: status_code, body
as a JSON string, headers), which is where the Lua-specific risk lies: two layers of JSON, escapes,
the argument line mod_curl splits on spaces. Two cases talk HTTP to a tiny in-test server through
both transports (mod_curl's libcurl via the curl tool, and LuaSocket).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from doubles.fs_lua import LUA_SCRIPT, LuaRun, lua_interpreters, run_lua
from doubles.raw_peer import raw_peer

INTERPRETERS = lua_interpreters()
pytestmark = pytest.mark.skipif(not INTERPRETERS, reason="no Lua interpreter installed")
UUID = "00000000-0000-4000-8000-000000000000"
VARS = {"uuid": UUID, "caller_id_number": "100001", "destination_number": "51987654321",
        "accountcode": "100001"}  # fmt: skip
ENV = {"APOLO_FS_USER": "freeswitch", "APOLO_FS_PASSWORD": "s3cret:with colon"}


def answer(**overrides: Any) -> dict[str, Any]:
    body = {
        "authorized": True, "reason": "authorized", "uuid": UUID, "account": "100001",
        "max_duration": 120, "reservation_id": 42, "sched_hangup_seconds": 119,
        "rate": {"prefix": "51", "name": "Peru", "rate_per_minute": "0.60",
                 "connection_fee": "0.00", "initial_increment": 60, "increment": 60},
    }  # fmt: skip
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def mod_curl_output(status: int, body: str | None) -> str:
    """What mod_curl prints for ``curl <url> json ...`` (json-c escapes '/' as '\\/')."""
    reply: dict[str, Any] = {"status_code": status}
    if body:
        reply["body"] = body
    reply["headers"] = [{"key": "Content-Type", "value": "application/json"}]
    return json.dumps(reply).replace("/", "\\/")


@pytest.fixture(params=INTERPRETERS or ["none"])
def lua(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(lua: str, tmp_path: Path, status: int = 200, body: Any = None, **kw: Any) -> LuaRun:
    """The script over mod_curl giving canned output (LuaSocket hidden: it would come first)."""
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    kw.setdefault("canned", mod_curl_output(status, text if body is not None else None))
    kw.setdefault("env", ENV)
    kw.setdefault("luasocket", False)
    return run_lua(lua, kw.pop("variables", VARS), tmp_dir=tmp_path, **kw)


def test_luac_parses_the_script() -> None:
    compilers = [c for c in ("luac5.1", "luac5.2", "luac5.3", "luac5.4", "luac") if shutil.which(c)]
    if not compilers:
        pytest.skip("no luac")
    for luac in compilers:
        proc = subprocess.run([luac, "-p", str(LUA_SCRIPT)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{luac}: {proc.stderr}"


def test_authorized(lua: str, tmp_path: Path) -> None:
    r = run(lua, tmp_path, body=answer())
    assert r.variables["apolo_result"] == "authorized"
    assert r.variables["apolo_reason"] == "authorized"
    assert r.variables["apolo_account"] == "100001"
    assert r.variables["apolo_max_duration"] == "120"
    assert r.variables["apolo_rate"] == "0.60"
    assert r.variables["apolo_reservation_id"] == "42"
    assert r.variables["execute_on_answer"] == "sched_hangup +119 ALLOTTED_TIMEOUT"
    assert r.hangups == [] and r.executed == []
    assert any(level == "info" and "authorized" in msg for level, msg in r.logs)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "http://127.0.0.1:port", "ftp://x", "http://"])
def test_bad_sidecar_url_fails_closed(lua: str, tmp_path: Path, url: str) -> None:
    r = run(lua, tmp_path, body=answer(), env={**ENV, "APOLO_SIDECAR_URL": url})
    assert r.variables["apolo_error"] == "bad_url"
    assert r.api_calls == [] and r.hangups == ["CALL_REJECTED"]


def test_https_goes_to_mod_curl_even_with_luasocket(lua: str, tmp_path: Path) -> None:
    env = {**ENV, "APOLO_SIDECAR_URL": "https://sidecar.example:8443"}
    r = run(lua, tmp_path, body=answer(), env=env, luasocket=True)
    [(cmd, args)] = r.api_calls
    assert cmd == "curl" and args.startswith("https://freeswitch:")
    assert r.variables["apolo_result"] == "authorized"
    assert any("via mod_curl in " in msg for _, msg in r.logs), r.logs


def test_mod_curl_command_line(lua: str, tmp_path: Path) -> None:
    r = run(lua, tmp_path, body=answer(), env={**ENV, "APOLO_SIDECAR_URL": "http://10.9.8.7:81/"})
    [(cmd, args)] = r.api_calls
    assert cmd == "curl"
    words = args.split(" ")
    assert words[0] == "http://freeswitch:s3cret%3Awith%20colon@10.9.8.7:81/v1/authorize"
    assert words[1] == "json"
    assert words[words.index("content-type") + 1] == "application/json"
    # mod_curl takes whole seconds: 1500 ms rounded down, so the budget is never exceeded
    assert words[words.index("timeout") + 1] == "1"
    assert words[words.index("connect-timeout") + 1] == "1"
    assert words[-2] == "post"
    sent = json.loads(urllib.parse.unquote(words[-1]))
    assert sent == {"uuid": UUID, "caller": "100001", "callee": "51987654321",
                    "switch": None, "variables": {"accountcode": "100001"}}  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "switch"),
    [({"hostname": "fs-host"}, "fs-host"), ({"hostname": "h", "switchname": "fs-a"}, "fs-a")],
)
def test_the_switch_name_is_sent(
    lua: str, tmp_path: Path, extra: dict[str, str], switch: str
) -> None:
    r = run(lua, tmp_path, body=answer(), variables={**VARS, **extra})
    [(_, args)] = r.api_calls
    assert json.loads(urllib.parse.unquote(args.split(" ")[-1]))["switch"] == switch


def test_strings_survive_both_json_layers(lua: str, tmp_path: Path) -> None:
    odd = 'A "quoted" \\ caller/é'
    reason = 'authorized \u00e9\U0001f600 "ok" \\ /'
    odd_vars = {**VARS, "caller_id_number": odd, "sip_h_X-Billing-Account": odd}
    r = run(lua, tmp_path, body=answer(reason=reason), variables=odd_vars)
    assert r.variables["apolo_reason"] == reason
    sent = json.loads(urllib.parse.unquote(r.api_calls[0][1].split(" ")[-1]))
    assert sent["caller"] == odd and sent["variables"]["sip_h_X-Billing-Account"] == odd


IDENTITY = {
    "accountcode": "100001", "sip_authorized": "true", "sip_auth_username": "1001",
    "sip_auth_realm": "pbx.example", "domain_name": "pbx.example",
    "sip_network_ip": "203.0.113.7", "sip_received_ip": "203.0.113.7",
    "sip_h_X-Billing-Account": "100002",
}  # fmt: skip


def test_identity_variables_are_sent_and_the_hook_cannot_pick_the_account(
    lua: str, tmp_path: Path
) -> None:
    from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES

    assert set(IDENTITY) == set(IDENTITY_VARIABLES)
    channel = {**VARS, **IDENTITY, "sip_from_user": "100009", "billing_account": "9"}
    r = run(lua, tmp_path, body=answer(account="100003"), args=["account=777"], variables=channel)
    sent = json.loads(urllib.parse.unquote(r.api_calls[0][1].split(" ")[-1]))
    assert sent["variables"] == IDENTITY and "account" not in sent
    assert r.variables["apolo_account"] == "100003"  # what the sidecar answered
    assert any(level == "warning" and "account=" in msg for level, msg in r.logs)
    no_vars = {k: v for k, v in VARS.items() if k != "accountcode"}
    r = run(lua, tmp_path, body=answer(account=None), variables=no_vars)
    assert json.loads(urllib.parse.unquote(r.api_calls[0][1].split(" ")[-1]))["variables"] == {}
    assert "apolo_account" not in r.variables


def test_uuid_falls_back_to_get_uuid(lua: str, tmp_path: Path) -> None:
    no_uuid = {k: v for k, v in VARS.items() if k != "uuid"}
    r = run(lua, tmp_path, body=answer(), variables=no_uuid)
    assert json.loads(urllib.parse.unquote(r.api_calls[0][1].split(" ")[-1]))["uuid"] == UUID
    assert r.variables["apolo_result"] == "authorized"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({"sched_hangup_seconds": ..., "max_duration": 60}, "+59"),
     ({"sched_hangup_seconds": None, "max_duration": 1}, "+1"),
     ({"sched_hangup_seconds": 0}, "+1")],
)  # fmt: skip
def test_cutoff_seconds(lua: str, tmp_path: Path, overrides: dict[str, Any], expected: str) -> None:
    r = run(lua, tmp_path, body=answer(**overrides))
    assert r.variables["execute_on_answer"] == f"sched_hangup {expected} ALLOTTED_TIMEOUT"


def test_answered_channel_gets_sched_hangup_now(lua: str, tmp_path: Path) -> None:
    r = run(lua, tmp_path, body=answer(), answered=True)
    assert r.executed == [("sched_hangup", "+119 ALLOTTED_TIMEOUT")]
    assert "execute_on_answer" not in r.variables


def test_denied(lua: str, tmp_path: Path) -> None:
    body = answer(authorized=False, reason="insufficient_balance", max_duration=0, rate=None,
                  reservation_id=None, sched_hangup_seconds=None)  # fmt: skip
    r = run(lua, tmp_path, body=body, env={**ENV, "APOLO_REJECT_CAUSE": "USER_BUSY"})
    assert r.variables["apolo_result"] == "denied"
    assert r.variables["apolo_reason"] == "insufficient_balance"
    assert "execute_on_answer" not in r.variables and "apolo_rate" not in r.variables
    assert r.hangups == ["USER_BUSY"]


@pytest.mark.parametrize(
    ("canned", "error"),
    [
        (mod_curl_output(500, '{"authorized": true}'), "http_500"),
        (mod_curl_output(0, None), "connection_error"),
        (mod_curl_output(200, "<html>oops</html>"), "bad_json"),
        (mod_curl_output(200, '{"authorized": "yes"}'), "bad_answer"),
        (mod_curl_output(200, json.dumps(answer(uuid="other"))), "uuid_mismatch"),
        (mod_curl_output(200, json.dumps(answer(sched_hangup_seconds=..., max_duration=...))),
         "no_duration"),
        (mod_curl_output(200, None), "bad_json"),
        ("not json at all", "connection_error"),
    ],
)  # fmt: skip
def test_unusable_answers_fail_closed(lua: str, tmp_path: Path, canned: str, error: str) -> None:
    r = run(lua, tmp_path, canned=canned)
    assert r.variables["apolo_result"] == "error"
    assert r.variables["apolo_reason"] == "sidecar_unavailable"
    assert r.variables["apolo_error"] == error
    assert r.hangups == ["CALL_REJECTED"]
    assert "execute_on_answer" not in r.variables
    assert any(level == "err" and "via mod_curl in " in msg for level, msg in r.logs), r.logs


def test_no_transport_at_all_fails_closed(lua: str, tmp_path: Path) -> None:
    r = run(lua, tmp_path, mode="missing", luasocket=False)
    assert r.variables["apolo_error"] == "no_http_transport"
    assert r.hangups == ["CALL_REJECTED"]


def test_fail_open(lua: str, tmp_path: Path) -> None:
    env = {**ENV, "APOLO_FAIL_OPEN": "true", "APOLO_FAIL_OPEN_MAX_SECONDS": "90"}
    r = run(lua, tmp_path, canned=mod_curl_output(503, "down"), env=env)
    assert r.variables["apolo_result"] == "authorized"
    assert r.variables["apolo_reason"] == "fail_open"
    assert r.variables["apolo_max_duration"] == "90"
    assert r.variables["execute_on_answer"] == "sched_hangup +90 ALLOTTED_TIMEOUT"
    assert r.hangups == []
    denied = answer(authorized=False, reason="no_rate", sched_hangup_seconds=None)
    assert run(lua, tmp_path, body=denied, env=env).hangups == ["CALL_REJECTED"]


@pytest.mark.parametrize("status", [401, 403, 415])
def test_a_4xx_fails_closed_even_when_fail_open(lua: str, tmp_path: Path, status: int) -> None:
    env = {**ENV, "APOLO_FAIL_OPEN": "true"}
    r = run(lua, tmp_path, canned=mod_curl_output(status, '{"error": {}}'), env=env)
    assert r.variables["apolo_error"] == f"http_{status}"
    assert r.variables["apolo_result"] == "error"
    assert r.hangups == ["CALL_REJECTED"]
    assert "execute_on_answer" not in r.variables


def test_internal_error_fails_closed_even_when_fail_open(lua: str, tmp_path: Path) -> None:
    no_uuid = {k: v for k, v in VARS.items() if k != "uuid"}  # and get_uuid() gives nil: a bug
    env = {**ENV, "APOLO_FAIL_OPEN": "true"}
    r = run(lua, tmp_path, body=answer(), variables=no_uuid, uuid=None, env=env)
    assert r.variables["apolo_result"] == "error"
    assert r.variables["apolo_reason"] == "internal_error"
    assert r.hangups == ["CALL_REJECTED"]


# ------------------------------------------------------------------ real HTTP, both transports


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []  # noqa: RUF012
    status = 200

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "headers": dict(self.headers), "json": request})
        body = json.dumps(answer(uuid=request["uuid"])).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    _Recorder.seen, _Recorder.status = [], 200
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("transport", ["mod_curl", "luasocket"])
def test_over_http(lua: str, tmp_path: Path, http_server: str, transport: str) -> None:
    if transport == "mod_curl" and not shutil.which("curl"):
        pytest.skip("the curl tool stands in for mod_curl's libcurl")
    mode = "cli" if transport == "mod_curl" else "missing"
    env = {**ENV, "APOLO_SIDECAR_URL": http_server}
    luasocket = transport == "luasocket"  # when present, LuaSocket comes first
    r = run_lua(lua, VARS, mode=mode, env=env, tmp_dir=tmp_path, luasocket=luasocket)
    if transport == "luasocket" and r.variables.get("apolo_error") == "no_http_transport":
        pytest.skip(f"LuaSocket is not installed for {lua}")
    assert r.variables["apolo_result"] == "authorized", r.logs
    assert any(level == "info" and f"via {transport} in " in msg for level, msg in r.logs)
    [seen] = _Recorder.seen
    assert seen["path"] == "/v1/authorize"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["Authorization"] == "Basic ZnJlZXN3aXRjaDpzM2NyZXQ6d2l0aCBjb2xvbg=="
    assert seen["json"]["uuid"] == UUID
    _Recorder.status = 500
    r = run_lua(lua, VARS, mode=mode, env=env, tmp_dir=tmp_path, luasocket=luasocket)
    assert r.variables["apolo_error"] == "http_500"
    assert r.hangups == ["CALL_REJECTED"]


# ------------------------------------------------------------------ LuaSocket: codes and budget
# the same codes, and the same whole-request budget, as the Python hook (test_apolo_fs.py)


def luasocket_run(lua: str, tmp_path: Path, url: str, timeout_ms: int = 1500) -> LuaRun:
    env = {**ENV, "APOLO_SIDECAR_URL": url, "APOLO_TIMEOUT_MS": str(timeout_ms)}
    r = run_lua(lua, VARS, mode="missing", env=env, tmp_dir=tmp_path)
    if r.variables.get("apolo_error") == "no_http_transport":
        pytest.skip(f"LuaSocket is not installed for {lua}")
    return r


def test_connection_refused(lua: str, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = luasocket_run(lua, tmp_path, f"http://127.0.0.1:{port}")
    assert r.variables["apolo_error"] == "connection_refused"
    assert r.hangups == ["CALL_REJECTED"]
    assert any(level == "err" and "via luasocket in " in msg for level, msg in r.logs), r.logs


@pytest.mark.parametrize(
    ("mode", "error"),
    [("hangs_up", "connection_error"), ("silent", "timeout"), ("dribbles", "timeout")],
)
def test_a_sick_sidecar_fails_closed_within_the_whole_budget(
    lua: str, tmp_path: Path, mode: str, error: str
) -> None:
    # "dribbles": a whole 200 one byte every 50 ms; only a budget over the whole request
    # stops it (a per-operation timeout never fires)
    with raw_peer(mode, dribble_interval=0.05) as url:
        started = time.monotonic()
        r = luasocket_run(lua, tmp_path, url, timeout_ms=400)
        took = time.monotonic() - started
    assert r.variables["apolo_error"] == error
    assert r.variables["apolo_result"] == "error" and r.hangups == ["CALL_REJECTED"]
    assert took < 0.4 + 0.5  # the interpreter's own start included
