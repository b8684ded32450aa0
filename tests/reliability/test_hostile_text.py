"""NUL bytes (and lone surrogates) in every kind of text value, through a real gunicorn.

PostgreSQL cannot store a NUL in text: every such value must be refused with a clean 4xx
before it reaches SQL, and nothing written. Two places answer differently, on purpose:
``/v1/authorize`` answers a denial (a 4xx would let the call through a hook configured to
fail open), and a CDR whose variables hold a NUL is stored, charged by its reservation, with
the value flagged and the raw document kept, never refused (FreeSWITCH would spool it and
``apolo cdr replay`` would fail on it forever).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import requests
from click.testing import CliRunner
from conftest import FS_AUTH, ROOT, TEST_PBX, Seed, SidecarProcess, call_body, start_sidecar
from fixtures_path import FS_FIXTURES, read_http_capture
from psycopg.rows import dict_row
from unit.cucm.cucm_rows import SIETE_CDR_NAME, siete

from reliability.conftest import PrivateServers
from reliability.hostile import (
    HOSTILE_ENV,
    answered_safely,
    login_session,
    only_user,
    refused,
    send,
    snapshot,
)
from reliability.tally import TALLY
from sidecar.cli.main import cli
from sidecar.simulator.cdr_template import build_cdr

NUMBER = "500001"
CALLEE = "51987654321"
PASSWORD = "hostile-text-password"
DIALPLAN = read_http_capture(FS_FIXTURES / "xml_curl" / "dialplan_request_loopback.http")


@pytest.fixture(scope="module")
def sidecar(servers: PrivateServers) -> Iterator[SidecarProcess]:
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1,
        **HOSTILE_ENV,
        APOLO_RESERVATION_SECONDS="60",
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def ctx(sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed) -> dict[str, Any]:
    rel_seed.account(NUMBER, balance="10.00", rates=[("51", "0.60")])
    rel_seed.account("100001", balance="10.00", rates=[("51", "0.60")])  # the capture's caller
    only_user(servers.db_url, "olga", "admin", PASSWORD)
    session, csrf = login_session(sidecar.url, "olga", PASSWORD)
    return {
        "url": sidecar.url,
        "db": servers.db_url,
        "redis": servers.redis_url,
        "admin": {"Authorization": f"Bearer {rel_seed.token('admin')}"},
        "switch": {"Authorization": f"Bearer {rel_seed.token('switch')}"},
        "session": session,
        "csrf": csrf,
    }


# GET routes and dashboard pages with a NUL in a query value, a query name or the path
NUL_GETS = [
    "/v1/cdrs?caller=100%00", "/v1/cdrs?account=5%00", "/v1/cdrs?hangup_cause=%00",
    "/v1/cdrs?uuid=%00", "/v1/cdrs?source=free%00switch", "/v1/cdrs?billing_status=%00",
    "/v1/cdrs/export.csv?callee=519%00", "/v1/cdrs/abc%00def", "/v1/cdrs?x%00=1",
    "/v1/accounts?q=50%00", "/v1/accounts?status=%00", "/v1/accounts?plan=%00",
    "/v1/accounts?after=%00", "/v1/accounts/500001%00",
    "/v1/rate-plans/plan%00", "/v1/rate-plans/plan%00/rates", "/v1/rate-plans/p%00/warnings",
    "/v1/rate-plans/p%00/export.csv",
    "/v1/reports/traffic?from=2026-01-01&to=2026-02-01&account=5%00",
    "/v1/reports/traffic?from=2026-01-01&to=2026-02-01&group=d%00ay",
    "/v1/reports/top-destinations?from=2026-01-01&to=2026-02-01&account=%00",
    "/v1/alerts/low-balance?account=%00", "/v1/fac?account=%00", "/v1/calls/active?node=%00",
]  # fmt: skip
DASHBOARD_GETS = [
    "/dashboard/accounts?q=%00", "/dashboard/accounts/500001%00", "/dashboard/cdrs?caller=%00",
    "/dashboard/rates?name=%00", "/dashboard/audit?actor=%00", "/dashboard/alerts?account=%00",
    "/dashboard/login?next=/dashboard/%00",
]  # fmt: skip


@pytest.mark.parametrize("target", NUL_GETS)
def test_nul_in_query_and_path_parameters_is_400(ctx: dict[str, Any], target: str) -> None:
    before = snapshot(ctx["db"])
    answer = send(ctx["url"], "GET", target, headers=ctx["admin"])
    refused(answer.status, before, ctx["db"], (target, answer.body[:200]))
    assert answer.status == 400, (target, answer.status, answer.body[:300])
    assert answer.json()["error"]["code"] == "invalid_text"


@pytest.mark.parametrize("target", DASHBOARD_GETS)
def test_nul_in_dashboard_pages_is_400(ctx: dict[str, Any], target: str) -> None:
    before = snapshot(ctx["db"])
    answer = send(ctx["url"], "GET", target, headers=ctx["session"])
    refused(answer.status, before, ctx["db"], (target, answer.body[:200]))
    assert answer.status == 400, (target, answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("text/html")


JSON_NUL = [
    ("POST", "/v1/accounts/500001/recharges", '{"amount": "1.00", "note": "a\\u0000b"}'),
    ("POST", "/v1/accounts", '{"number": "7\\u00001", "plan": "p", "type": "prepaid"}'),
    ("PATCH", "/v1/accounts/500001", '{"name": "x\\u0000"}'),
    ("POST", "/v1/rate-plans", '{"name": "p\\u0000"}'),
    ("POST", "/v1/fac", '{"code": "12345678", "name": "b\\u0000", "level": 1, "account": "1"}'),
    ("POST", "/v1/rerating/preview",
     '{"from": "2026-01-01", "to": "2026-02-01", "plan": "\\u0000"}'),
    ("POST", "/v1/accounts/500001/recharges", '{"amount": "1.00", "note": "\\ud800"}'),
    ("POST", "/v1/accounts/500001/recharges", '{"amount": "1.00", "n\\u0000": "x"}'),
    ("POST", "/v1/session", '{"username": "olga\\u0000", "password": "x"}'),
    ("POST", "/v1/session", '{"username": "\\ud83d", "password": "x"}'),
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(JSON_NUL)))
def test_nul_in_json_fields_is_400(ctx: dict[str, Any], case: int) -> None:
    method, target, body = JSON_NUL[case]
    headers = {} if target == "/v1/session" else ctx["admin"]
    before = snapshot(ctx["db"])
    answer = send(ctx["url"], method, target, body.encode(),
                  {**headers, "Content-Type": "application/json"})  # fmt: skip
    refused(answer.status, before, ctx["db"], (target, answer.body[:200]))
    assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_text", (
        target, answer.body[:300])  # fmt: skip


def test_nul_in_form_fields_is_400(ctx: dict[str, Any]) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        (f"/dashboard/accounts/{NUMBER}/recharge", ctx["session"],
         f"csrf_token={ctx['csrf']}&amount=1.00&idempotency_key=k1&note=a%00b"),
        (f"/dashboard/accounts/{NUMBER}/recharge", ctx["session"],
         f"csrf_token={ctx['csrf']}&amount=1.00%00&idempotency_key=k2"),
        ("/dashboard/login", {"Cookie": "apolo_login_csrf=t"},
         "login_csrf=t&username=olga%00&password=x"),
        ("/v1/accounts/bulk-recharges?dry_run=false", ctx["admin"],
         "note=n%00"),
        ("/freeswitch/dialplan", {"Authorization": _basic()},
         DIALPLAN.body.decode().replace("Caller-Caller-ID-Number=100001",
                                        "Caller-Caller-ID-Number=100001%00")),
        ("/freeswitch/dialplan", {"Authorization": _basic()},
         DIALPLAN.body.decode().replace("Caller-Destination-Number=",
                                        "Caller-Destination-Number=5%00")),
    ]  # fmt: skip
    for target, headers, body in cases:
        before = snapshot(ctx["db"])
        answer = send(ctx["url"], "POST", target, body.encode(), {**headers, **form})
        refused(answer.status, before, ctx["db"], (target, body[-40:], answer.body[:200]))
        assert answer.status == 400, (target, answer.status, answer.body[:300])
    before = snapshot(ctx["db"])
    multipart = requests.post(
        f"{ctx['url']}/v1/accounts/bulk-recharges", headers=ctx["admin"], timeout=10,
        files={"file": ("r\x00.csv", b"account,amount\n500001,1.00\n")},
    )  # fmt: skip
    refused(multipart.status_code, before, ctx["db"], multipart.text[:200])


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{FS_AUTH[0]}:{FS_AUTH[1]}".encode()).decode()


AUTHORIZE_NUL = [
    {"caller": NUMBER + "\x00"},
    {"callee": CALLEE + "\x00"},
    {"variables": {**TEST_PBX, "sip_h_X-Billing-Account": NUMBER + "\x00"}},
    {"uuid": str(uuidlib.uuid4()) + "\x00"},
    {"caller": "\ud800"},
    {"callee": "5" * 129},
    {"caller": ""},
]


@pytest.mark.parametrize("case", range(len(AUTHORIZE_NUL) + 1))
def test_authorize_denies_unusable_text(ctx: dict[str, Any], case: int) -> None:
    """A denial, not a 4xx: the hook lets a call through on any non-200 when it fails open."""
    import json

    body = call_body(str(uuidlib.uuid4()), NUMBER, CALLEE)
    if case < len(AUTHORIZE_NUL):
        body.update(AUTHORIZE_NUL[case])
        raw = json.dumps(body).encode("utf-8", "surrogatepass")
    else:  # raw bytes that are not UTF-8 in the caller (the Lua hook passes them on)
        raw = json.dumps(body).encode().replace(NUMBER.encode(), b"5000\xff\xfe", 1)
    before = snapshot(ctx["db"])
    answer = send(ctx["url"], "POST", "/v1/authorize", raw,
                  {"Authorization": _basic(), "Content-Type": "application/json"})  # fmt: skip
    answered_safely(answer.status, before, ctx["db"], answer.body[:200])
    assert answer.status == 200, answer.body[:300]
    decision = answer.json()
    assert decision["authorized"] is False and decision["reason"] == "invalid_request", decision
    assert decision["uuid"] == body["uuid"]  # the hook checks the answer is for its call


# --------------------------------------------------------------------- CDRs holding a NUL


def nul_cdr(call: str, account_variable: bool = True) -> bytes:
    """A CDR of a call answered 30 s ago, talked 20 s, whose accountcode holds a NUL."""
    answered = time.time_ns() // 1000 - 30_000_000
    xml = build_cdr(call, NUMBER, CALLEE, answered, 20_000_000, TEST_PBX)
    return xml.replace(b"<variables>", b"<variables>\n    <accountcode>100001%00</accountcode>", 1)


def encoded(xml: bytes, encoding: str) -> tuple[str, bytes]:
    if encoding == "urlencoded":
        return "application/x-www-form-urlencoded", b"cdr=" + quote(xml, safe="").encode()
    if encoding == "plaintext":
        return "application/x-www-form-plaintext", b"cdr=" + xml
    if encoding == "base64":
        return "application/x-www-form-base64-encoded", b"cdr=" + base64.b64encode(xml)
    return ("text/xml" if encoding == "textxml" else "application/xml"), xml


def _authorize(ctx: dict[str, Any], call: str) -> None:
    answer = requests.post(f"{ctx['url']}/v1/authorize", auth=FS_AUTH, timeout=10,
                           json=call_body(call, NUMBER, CALLEE))  # fmt: skip
    assert answer.json()["authorized"] is True, answer.text


def _stored(db: str, call: str) -> dict[str, Any]:
    with psycopg.connect(db, row_factory=dict_row) as c:
        row = c.execute("SELECT billing_status, cost, billing_note, raw_xml FROM cdrs"
                        " WHERE call_uuid = %s", (call,)).fetchone()  # fmt: skip
    assert row is not None, f"CDR {call} was not stored"
    return row


@pytest.mark.parametrize(
    "encoding", ["urlencoded", "plaintext", "base64", "textxml", "application_xml"]
)
def test_a_cdr_with_a_nul_is_stored_flagged_and_charged(ctx: dict[str, Any], encoding: str) -> None:
    call = str(uuidlib.uuid4())
    _authorize(ctx, call)
    content_type, body = encoded(nul_cdr(call), encoding)
    answer = requests.post(f"{ctx['url']}/freeswitch/cdr", params={"uuid": f"a_{call}"},
                           data=body, headers={"Content-Type": content_type}, auth=FS_AUTH,
                           timeout=10)  # fmt: skip
    TALLY.hostile(answer.status_code, changed=False, safe=True)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["billing_status"] == "charged" and answer.json()["cost"] == "0.6000"
    row = _stored(ctx["db"], call)
    assert row["billing_status"] == "charged"
    assert "accountcode" in row["billing_note"] and "NUL" in row["billing_note"]
    assert "<accountcode>100001%00</accountcode>" in row["raw_xml"]  # the bytes, as sent
    again = requests.post(f"{ctx['url']}/freeswitch/cdr", params={"uuid": f"a_{call}"},
                          data=body, headers={"Content-Type": content_type}, auth=FS_AUTH,
                          timeout=10)  # fmt: skip
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_an_unreserved_cdr_with_a_nul_is_stored_not_refused(ctx: dict[str, Any]) -> None:
    call = str(uuidlib.uuid4())
    answer = requests.post(f"{ctx['url']}/freeswitch/cdr", params={"uuid": f"a_{call}"},
                           data=nul_cdr(call), headers={"Content-Type": "text/xml"},
                           auth=FS_AUTH, timeout=10)  # fmt: skip
    TALLY.hostile(answer.status_code, changed=False, safe=True)
    assert answer.status_code == 200, answer.text[:300]
    row = _stored(ctx["db"], call)
    assert row["billing_status"] in ("charged", "unrated") and "accountcode" in row["billing_note"]


def _spool(directory: Path, calls: list[str]) -> None:
    """err-log-dir files as mod_xml_cdr writes them: raw XML, percent-encoded, base64."""
    directory.mkdir(parents=True, exist_ok=True)
    writers = (lambda x: x, lambda x: quote(x, safe="").encode(), base64.b64encode)
    for call, write in zip(calls, writers, strict=True):
        (directory / f"a_{call}.cdr.xml").write_bytes(write(nul_cdr(call)))


def test_replay_stores_spooled_cdrs_holding_a_nul(ctx: dict[str, Any], tmp_path: Path) -> None:
    calls = [str(uuidlib.uuid4()) for _ in range(3)]
    for call in calls:
        _authorize(ctx, call)
    _spool(tmp_path / "http", calls)
    env = {"APOLO_FS_PASSWORD": FS_AUTH[1], "APOLO_FS_USER": FS_AUTH[0]}
    result = CliRunner().invoke(cli, ["cdr", "replay", str(tmp_path / "http"), "--url",
                                      ctx["url"]], env=env, catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "http").iterdir()) == [], result.output
    for call in calls:
        assert _stored(ctx["db"], call)["billing_status"] == "charged"
    direct = [str(uuidlib.uuid4()) for _ in range(3)]
    _spool(tmp_path / "direct", direct)
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "cdr", "replay", str(tmp_path / "direct"),
         "--direct"],
        env={**os.environ, "DATABASE_URL": ctx["db"], "REDIS_URL": ctx["redis"]}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list((tmp_path / "direct").iterdir()) == []
    for call in direct:
        assert "accountcode" in _stored(ctx["db"], call)["billing_note"]


# ------------------------------------------------------------------------- files


def test_nul_in_uploaded_files_is_refused_by_line(ctx: dict[str, Any]) -> None:
    table = siete()
    row = table.fresh(table.rows[0], callingPartyNumber="100\x00")
    files = [
        ("/v1/rate-plans/nul/import", {"Content-Type": "text/csv"},
         b"prefix,name,rate_per_minute\n51,Pe\x00ru,0.5\n"),
        ("/v1/accounts/bulk-recharges", {"Content-Type": "text/csv"},
         b"account,amount,note\n500001,1.00,a\x00b\n"),
        ("/cucm/cdr", {"X-Apolo-File-Name": SIETE_CDR_NAME}, table.to_bytes([row])),
    ]  # fmt: skip
    for target, headers, body in files:
        auth = ctx["switch"] if target.startswith("/cucm") else ctx["admin"]
        before = snapshot(ctx["db"])
        answer = send(ctx["url"], "POST", target, body, {**auth, **headers})
        refused(answer.status, before, ctx["db"], (target, answer.body[:200]))
        assert answer.json()["error"]["code"] in (
            "invalid_rates",
            "invalid_file",
            "invalid_cucm_file",
        ), answer.body[:300]


HEADER_NUL = [
    ("POST", f"/v1/accounts/{NUMBER}/recharges", "Idempotency-Key", "k\x00"),
    ("POST", "/cucm/cdr", "X-Apolo-File-Name", SIETE_CDR_NAME + "\x00"),
    ("POST", "/v1/session", "Origin", "http://a\x00b"),
    ("GET", f"/v1/accounts/{NUMBER}", "X-Forwarded-For", "10.0.0.1\x00"),
    ("GET", "/dashboard/", "Cookie", "apolo_session=a\x00b"),
]


@pytest.mark.parametrize("case", range(len(HEADER_NUL)))
def test_nul_in_headers_is_400(ctx: dict[str, Any], case: int) -> None:
    method, target, name, value = HEADER_NUL[case]
    auth = ctx["switch"] if target.startswith("/cucm") else ctx["admin"]
    headers = {"Content-Type": "application/json", name: value}
    if target != "/v1/session" and name != "Cookie":
        headers.update(auth)
    body = b'{"amount": "1.00"}' if method == "POST" else b""
    before = snapshot(ctx["db"])
    answer = send(ctx["url"], method, target, body, headers)
    refused(answer.status, before, ctx["db"], (name, answer.body[:200]))
