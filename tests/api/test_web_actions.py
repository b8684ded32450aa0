"""Dashboard pages doing their work: recharge, rate import, CDRs, overview, audit, accounts."""

from __future__ import annotations

import io
import re
import time
import uuid
from datetime import UTC, datetime

import pytest
from conftest import FS_AUTH, TEST_PBX, call_body
from test_web_support import csrf_of, dashboard_with_users
from test_web_support import rows as _rows
from test_web_support import session_as as _session

from sidecar.simulator.cdr_template import build_cdr


@pytest.fixture
def web(app, seed, db_url):  # type: ignore[no-untyped-def]
    dashboard_with_users(app, db_url)
    seed.account("100001", balance="10")
    return app


def _recharge(client, number: str, amount: str, key: str, note: str = ""):  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf_of(client), "amount": amount, "note": note, "idempotency_key": key}
    return client.post(f"/dashboard/accounts/{number}/recharge", data=data)


def test_recharge_form_writes_ledger_and_audit_once(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "operator")
    resp = _recharge(client, "100001", "5.25", "key-1", note="cash at desk")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/dashboard/accounts/100001?done=recharged"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Recharge applied." in page
    ledger = re.search(r'<table class="grid" id="ledger">.*?</table>', page, re.S)
    assert ledger and "recharge" in ledger.group(0) and "5.25" in ledger.group(0)
    assert "15.25" in ledger.group(0) and "cash at desk" in ledger.group(0)
    rows = _rows(
        db_url, "SELECT amount, balance_after, actor, note FROM ledger WHERE kind = 'recharge'"
    )
    assert [(str(r["amount"]), str(r["balance_after"]), r["actor"]) for r in rows] == [
        ("5.2500", "15.2500", "user:operator-user")
    ]
    audit = _rows(
        db_url, "SELECT actor, before, after FROM audit_log WHERE action = 'account.recharge'"
    )
    assert len(audit) == 1 and audit[0]["actor"] == "user:operator-user"
    assert audit[0]["before"]["balance"] == "10.0000"  # type: ignore[index]
    assert audit[0]["after"]["balance"] == "15.2500"  # type: ignore[index]
    # the same form sent again (double click, browser retry) recharges once
    again = _recharge(client, "100001", "5.25", "key-1", note="cash at desk")
    assert again.status_code == 303 and "replayed=1" in again.headers["Location"]
    assert "already applied" in client.get(again.headers["Location"]).get_data(as_text=True)
    assert seed.balance("100001")["balance"] == "15.2500"
    # a new form (new key) is a new recharge
    assert _recharge(client, "100001", "0.0001", "key-2").status_code == 303
    assert seed.balance("100001")["balance"] == "15.2501"


@pytest.mark.parametrize(
    ("amount", "message"),
    [("abc", "not a decimal"), ("-1", "must not be negative"), ("0", "must be positive"),
     ("1.00001", "at most 4 decimals"), ("", "not a decimal")],
)  # fmt: skip
def test_bad_recharge_shows_the_error_and_changes_nothing(
    web, seed, db_url, amount, message
) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "admin")
    resp = _recharge(client, "100001", amount, "bad-key")
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert 'id="recharge-error"' in html and message in html
    assert seed.balance("100001")["balance"] == "10.0000"
    assert _rows(db_url, "SELECT 1 FROM ledger WHERE kind = 'recharge'") == []
    assert _rows(db_url, "SELECT 1 FROM idempotency_keys") == []
    # the key was not used up: the corrected form goes through
    assert _recharge(client, "100001", "1", "bad-key").status_code == 303
    assert seed.balance("100001")["balance"] == "11.0000"


def test_recharge_of_an_unknown_account_is_404(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "admin")
    assert _recharge(client, "999999", "1", "k").status_code == 404
    assert client.get("/dashboard/accounts/999999").status_code == 404
    assert _rows(db_url, "SELECT 1 FROM ledger WHERE kind = 'recharge'") == []


def _upload(client, plan: str, body: bytes, replace: bool = False):  # type: ignore[no-untyped-def]
    data = {
        "csrf_token": csrf_of(client, "/dashboard/rates"),
        "plan": plan,
        "file": (io.BytesIO(body), "rates.csv"),
    }
    if replace:
        data["replace"] = "on"
    return client.post("/dashboard/rates/import", data=data, content_type="multipart/form-data")


def test_rate_import_form_imports_and_lists(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "admin")
    csv = b"prefix,name,rate_per_minute\n4420,UK London,0.0125\n4479,UK mobile,0.09\n"
    resp = _upload(client, "web-plan", csv)
    assert resp.status_code == 201, re.findall(
        r'class="error"[^>]*>([^<]*)', resp.get_data(as_text=True)
    )
    html = resp.get_data(as_text=True)
    assert "Imported 2 rate(s) into web-plan." in html
    assert "UK London" in html and "0.0125" in html
    stored = _rows(db_url, "SELECT prefix, rate_per_minute FROM rates r JOIN rate_plans p"
                   " ON p.id = r.plan_id WHERE p.name = 'web-plan' ORDER BY prefix")  # fmt: skip
    assert [(r["prefix"], str(r["rate_per_minute"])) for r in stored] == [
        ("4420", "0.012500"), ("4479", "0.090000")
    ]  # fmt: skip
    audit = _rows(db_url, "SELECT actor, after FROM audit_log WHERE action = 'rates.import'")
    assert audit[0]["actor"] == "user:admin-user" and audit[0]["after"]["rates"] == 2  # type: ignore[index]
    search = client.get("/dashboard/rates?plan=web-plan&prefix=4479").get_data(as_text=True)
    assert "UK mobile" in search and "UK London" not in search
    replaced = _upload(client, "web-plan", b"prefix,rate_per_minute\n33,0.02\n", replace=True)
    assert replaced.status_code == 201
    assert len(_rows(db_url, "SELECT 1 FROM rates r JOIN rate_plans p ON p.id = r.plan_id"
                     " WHERE p.name = 'web-plan'")) == 1  # fmt: skip


def test_rate_import_takes_files_larger_than_a_cdr(web, db_url) -> None:  # type: ignore[no-untyped-def]
    limit = web.config["MAX_CONTENT_LENGTH"]
    name = "x" * 190
    lines = [f"{440000 + n},{name},0.01" for n in range(limit // 200 + 500)]
    body = ("prefix,name,rate_per_minute\n" + "\n".join(lines) + "\n").encode()
    assert len(body) > limit
    resp = _upload(_session(web, "admin"), "big-plan", body)
    assert resp.status_code == 201, resp.get_data(as_text=True)[:300]
    stored = _rows(db_url, "SELECT count(*) AS n FROM rates r JOIN rate_plans p"
                   " ON p.id = r.plan_id WHERE p.name = 'big-plan'")  # fmt: skip
    assert stored[0]["n"] == len(lines)


def test_rate_import_with_bad_lines_lists_them_and_imports_nothing(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "admin")
    csv = b"prefix,rate_per_minute\n51,0.5\n52,lots\n5x3,0.1\n51,0.7\n"
    resp = _upload(client, "bad-plan", csv)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "nothing was imported" in html
    table = re.search(r'id="import-errors">.*?</table>', html, re.S)
    assert table is not None
    lines = re.findall(r'<td class="num">(\d+)</td>', table.group(0))
    assert lines == ["3", "4", "5"]  # bad money, bad prefix, duplicate of line 2
    assert _rows(db_url, "SELECT 1 FROM rate_plans WHERE name = 'bad-plan'") == []
    assert _rows(db_url, "SELECT 1 FROM audit_log WHERE action = 'rates.import'") == []
    missing = client.post(
        "/dashboard/rates/import",
        data={"csrf_token": csrf_of(client, "/dashboard/rates"), "plan": "p"},
        content_type="multipart/form-data",
    )
    assert missing.status_code == 400 and "Choose a CSV file" in missing.get_data(as_text=True)


def _call(client, number: str, talk_us: int) -> str:  # type: ignore[no-untyped-def]
    call = str(uuid.uuid4())
    auth = client.post("/v1/authorize", json=call_body(call, number), auth=FS_AUTH)
    assert auth.get_json()["authorized"] is True
    return call


def _hang_up(client, call: str, number: str, answered: float, talk_us: int) -> None:  # type: ignore[no-untyped-def]
    cdr = build_cdr(call, number, "51987654321", int(answered * 1e6), talk_us, TEST_PBX)
    resp = client.post(
        f"/freeswitch/cdr?uuid={call}", data=cdr, content_type="text/xml", auth=FS_AUTH
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_overview_and_cdrs_show_a_charged_call(web, seed) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    if now.hour == 0 and now.minute < 5:
        pytest.skip("the call would start yesterday (UTC)")
    client = _session(web, "viewer")
    empty = client.get("/dashboard/").get_data(as_text=True)
    assert 'id="overview-empty"' in empty
    call = _call(client, "100001", 90_000_000)
    live = client.get("/dashboard/").get_data(as_text=True)
    assert re.search(r'id="stat-active"><a href="/dashboard/calls">1</a>', live)
    _hang_up(client, call, "100001", time.time() - 95, 90_000_000)
    html = client.get("/dashboard/").get_data(as_text=True)
    # 90 s talk, billed as 2 minutes at 0.60/min (60/60 increments)
    assert 'id="stat-calls">1<' in html and 'id="stat-minutes">1.50<' in html
    assert 'id="stat-revenue">1.20<' in html and 'id="stat-acd">0:01:30<' in html
    assert 'id="stat-asr">100.00 %<' in html
    assert re.search(r'id="stat-active"><a href="/dashboard/calls">0</a>', html)
    bars = re.findall(r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)">', html)
    assert len(bars) == 48 and sum(1 for _, h in bars if float(h) > 0) == 2
    cdrs = client.get("/dashboard/cdrs?account=100001&answered=true")
    page = cdrs.get_data(as_text=True)
    assert cdrs.status_code == 200 and call[:8] in page
    assert "0:01:30" in page and "0:02:00" in page and ">1.20<" in page
    export = re.search(r'id="cdr-export" href="([^"]+)"', page)
    assert export and export.group(1) == "/v1/cdrs/export.csv?account=100001&amp;answered=true"
    csv = client.get(export.group(1).replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert call in csv.get_data(as_text=True)
    none = client.get("/dashboard/cdrs?answered=false").get_data(as_text=True)
    assert 'id="cdrs-empty"' in none and call[:8] not in none


@pytest.mark.parametrize(
    ("query", "message"),
    [("account=999999", "no account 999999"), ("from=yesterday", "not an ISO 8601"),
     ("min_cost=x", "not a decimal"), ("destination=5a", "1-32 digits")],
)  # fmt: skip
def test_bad_cdr_filters_are_explained(web, query, message) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "viewer")
    resp = client.get(f"/dashboard/cdrs?{query}")
    assert resp.status_code in (400, 404)
    assert message in resp.get_data(as_text=True)


def test_audit_page_lists_and_filters(web) -> None:  # type: ignore[no-untyped-def]
    admin = _session(web, "admin")
    assert _recharge(admin, "100001", "2", "audit-key").status_code == 303
    assert _upload(admin, "audit-plan", b"prefix,rate_per_minute\n1,0.1\n").status_code == 201
    viewer = _session(web, "viewer")
    html = viewer.get("/dashboard/audit").get_data(as_text=True)
    assert "account.recharge" in html and "rates.import" in html and "user.login" in html
    assert "10.0000" in html and "12.0000" in html  # balance before -> after
    only = viewer.get("/dashboard/audit?action=rates.").get_data(as_text=True)
    assert "rates.import" in only and "account.recharge" not in only
    assert 'id="audit-empty"' in viewer.get("/dashboard/audit?actor=nobody").get_data(as_text=True)


def test_accounts_search_and_pages(web, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    for n in range(27):
        seed.account(f"2000{n:02d}", plan=plan, balance="1")
    client = _session(web, "viewer")
    first = client.get("/dashboard/accounts").get_data(as_text=True)
    numbers = re.findall(r'href="/dashboard/accounts/(\d+)"', first)
    assert numbers == sorted(numbers) and len(numbers) == 25 and numbers[0] == "100001"
    nxt = re.search(r'id="next-page" href="([^"]+)"', first)
    assert nxt is not None
    second = client.get(nxt.group(1).replace("&amp;", "&")).get_data(as_text=True)
    rest = re.findall(r'href="/dashboard/accounts/(\d+)"', second)
    assert rest == ["200024", "200025", "200026"] and 'id="next-page"' not in second
    found = client.get("/dashboard/accounts?q=200013").get_data(as_text=True)
    assert re.findall(r'href="/dashboard/accounts/(\d+)"', found) == ["200013"]
    none = client.get("/dashboard/accounts?q=nothing-like-this").get_data(as_text=True)
    assert 'id="accounts-empty"' in none and "clear the search" in none
