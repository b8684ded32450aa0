"""Dashboard: a plan's timings and number rules on the rates page (admin forms), the new
rate columns, and a call's spans on its CDR page."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from test_web_support import csrf_of, dashboard_with_users
from test_web_support import rows as _rows
from test_web_support import session_as as _session


@pytest.fixture
def web(app, seed, db_url):  # type: ignore[no-untyped-def]
    return dashboard_with_users(app, db_url)


def test_admin_adds_a_timing_and_rules_from_the_rates_page(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("52", "0.10")])
    client = _session(web, "admin")
    token = csrf_of(client, f"/dashboard/rates?plan={plan}")
    form = {"csrf_token": token, "plan": plan, "name": "peak", "days": "mon-fri",
            "from": "08:00", "to": "20:00"}  # fmt: skip
    resp = client.post("/dashboard/rates/timings", data=form)
    assert resp.status_code == 303 and "done=timing" in resp.headers["Location"]
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="timings"' in page and "mon-fri" in page and "08:00" in page
    bad = client.post("/dashboard/rates/timings", data={**form, "name": "x", "days": "funday"})
    assert bad.status_code == 400 and "funday" in bad.get_data(as_text=True)
    rule = {"csrf_token": token, "plan": plan, "owner": "switch", "source_name": "fs-mx",
            "direction": "callee", "add": "52", "min_length": "10", "max_length": "10"}  # fmt: skip
    resp = client.post("/dashboard/rates/number-rules", data=rule)
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "switch fs-mx" in page and 'id="number-rules"' in page
    (stored,) = _rows(db_url, "SELECT id, source_name, add_prefix FROM number_rules")
    assert (stored["source_name"], stored["add_prefix"]) == ("fs-mx", "52")
    form_delete = {"csrf_token": token, "plan": plan, "rule_id": stored["id"]}
    gone = client.post("/dashboard/rates/number-rules/delete", data=form_delete)
    assert gone.status_code == 303 and _rows(db_url, "SELECT id FROM number_rules") == []
    no_csrf = client.post("/dashboard/rates/timings", data={**form, "csrf_token": "", "name": "y"})
    assert no_csrf.status_code == 403
    assert [r["name"] for r in _rows(db_url, "SELECT name FROM timings")] == ["peak"]


def test_viewers_see_timings_and_columns_but_no_forms(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("52", "0.10")])
    with psycopg.connect(db_url) as c:
        c.execute("INSERT INTO timings (plan_id, name, dates) SELECT id, 'xmas', '{2026-12-25}'"
                  " FROM rate_plans WHERE name = %s", (plan,))  # fmt: skip
        c.execute("UPDATE rates SET minimum_charge = 0.5, free_seconds = 4,"
                  " timing_id = (SELECT id FROM timings) WHERE prefix = '52'")  # fmt: skip
        c.commit()
    client = _session(web, "viewer")
    page = client.get(f"/dashboard/rates?plan={plan}").get_data(as_text=True)
    assert "2026-12-25" in page and "xmas" in page and "4 s" in page and "0.50" in page
    assert 'id="timing-form"' not in page and 'id="rule-form"' not in page
    resp = client.post("/dashboard/rates/timings", data={
        "csrf_token": csrf_of(client, "/dashboard/rates"), "plan": plan, "name": "z",
        "days": "sat"})  # fmt: skip
    assert resp.status_code == 403


def test_a_cdr_page_shows_its_spans(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    call = str(uuid.uuid4())
    spans = ('[{"rate_id": 7, "start": "2026-03-03T01:58:30.000000Z", "seconds": 90,'
             ' "rate_per_minute": "0.100000", "amount": "0.150000"}, {"rate_id": 8,'
             ' "start": "2026-03-03T02:00:00.000000Z", "seconds": 90,'
             ' "rate_per_minute": "0.040000", "amount": "0.060000"}]')  # fmt: skip
    with psycopg.connect(db_url) as c:
        c.execute(
            "INSERT INTO cdrs (call_uuid, leg, caller, caller_normalized, callee, destination,"
            " billing_status, billsec, billed_seconds, cost, spans, start_at, answer_at)"
            " VALUES (%s, 'a', '+15034401001', '15034401001', '9011442079460000',"
            " '442079460000', 'charged', 150, 180, 0.21, %s, now(), now())",
            (call, spans),
        )
        c.commit()
    client = _session(web, "viewer")
    listing = client.get("/dashboard/cdrs").get_data(as_text=True)
    assert f"/dashboard/cdrs/{call}" in listing
    page = client.get(f"/dashboard/cdrs/{call}").get_data(as_text=True)
    assert 'id="spans-a"' in page and "2026-03-03T02:00:00.000000Z" in page
    assert "0.15" in page and "0.06" in page and "442079460000" in page and "15034401001" in page
    assert client.get(f"/dashboard/cdrs/{uuid.uuid4()}").status_code == 404
