"""Dashboard: fraud controls pages (admin forms, read-only for others) and fraud alerts."""

from __future__ import annotations

import pytest
from conftest import FS_AUTH, call_body
from fraud_helpers import audits, new_uuid, query, reset_settings
from test_web_support import csrf_of, dashboard_with_users
from test_web_support import session_as as _session


@pytest.fixture
def web(app, seed, db_url):  # type: ignore[no-untyped-def]
    reset_settings(db_url)
    dashboard_with_users(app, db_url)
    seed.account("100001", balance="10", rates=[("51", "0.60")])
    return app


def _account_form(client, **fields: str):  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf_of(client, "/dashboard/accounts/100001/controls"), "allow": "",
            "deny": "", "max_calls_per_minute": "", "daily_spend_limit": "", "time_zone": "UTC",
            "spend_spike_factor": "", **fields}  # fmt: skip
    return client.post("/dashboard/accounts/100001/controls", data=data)


def test_admin_sets_an_accounts_controls_from_its_page(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "admin")
    account_page = client.get("/dashboard/accounts/100001").get_data(as_text=True)
    assert 'href="/dashboard/accounts/100001/controls"' in account_page
    resp = _account_form(client, deny="1900 premium rate\n881 satellite\n",
                         max_calls_per_minute="6", daily_spend_limit="12.50",
                         time_zone="America/Lima")  # fmt: skip
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/dashboard/accounts/100001/controls?done=saved"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="controls-done"' in page and "1900 premium rate" in page
    assert 'value="America/Lima"' in page and 'value="12.5000"' in page
    (row,) = audits(db_url, "controls.account.update")
    assert row["actor"] == "user:admin-user" and row["after"]["max_calls_per_minute"] == 6
    assert [r["prefix"] for r in row["after"]["deny"]] == ["1900", "881"]


def test_a_bad_form_shows_the_error_and_changes_nothing(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = _session(web, "admin")
    for fields, words in (
        ({"deny": "19OO"}, "is not a prefix"),
        ({"daily_spend_limit": "-3"}, "must not be negative"),
        ({"max_calls_per_minute": "lots"}, "whole number"),
        ({"time_zone": "Atlantis/Capital"}, "not a time zone"),
        ({"allow": "51", "deny": "51"}, "both allowed and denied"),
    ):
        resp = _account_form(client, **fields)
        assert resp.status_code == 400
        assert 'id="controls-error"' in resp.get_data(as_text=True)
        assert words in resp.get_data(as_text=True)
    assert audits(db_url, "controls.account.update") == []
    assert query(db_url, "SELECT count(*) AS n FROM destination_rules")[0]["n"] == 0


def test_only_admins_change_controls_from_the_dashboard(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    for role in ("operator", "viewer"):
        client = _session(web, role)
        page = client.get("/dashboard/accounts/100001/controls").get_data(as_text=True)
        assert 'id="controls-submit"' not in page and "disabled" in page
        assert _account_form(client, deny="1").status_code == 403
        overview = client.get("/dashboard/controls").get_data(as_text=True)
        assert 'id="settings-submit"' not in overview
    admin = _session(web, "admin")
    no_csrf = admin.post("/dashboard/accounts/100001/controls", data={"deny": "1"})
    assert no_csrf.status_code == 403
    assert query(db_url, "SELECT count(*) AS n FROM destination_rules")[0]["n"] == 0


def test_settings_and_plan_rules_from_the_controls_page(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    client = _session(web, "admin")
    csrf = csrf_of(client, "/dashboard/controls")
    resp = client.post("/dashboard/controls/settings", data={
        "csrf_token": csrf, "spike_factor": "6", "spike_min_spend": "25",
        "alert_window_seconds": "120"})  # fmt: skip
    assert resp.status_code == 303
    bad = client.post("/dashboard/controls/settings", data={
        "csrf_token": csrf, "spike_factor": "1", "spike_min_spend": "25",
        "alert_window_seconds": "120"})  # fmt: skip
    assert bad.status_code == 400 and "greater than 1" in bad.get_data(as_text=True)
    resp = client.post(f"/dashboard/controls/plans/{plan}", data={
        "csrf_token": csrf, "allow": "51 Peru", "deny": "51900 premium"})  # fmt: skip
    assert resp.status_code == 303
    page = client.get("/dashboard/controls?done=plan").get_data(as_text=True)
    assert 'id="plan-done"' in page and "51900 premium" in page and 'value="6.00"' in page
    (row,) = audits(db_url, "controls.settings.update")
    assert row["after"]["spike_min_spend"] == "25.0000"
    (row,) = audits(db_url, "controls.plan.update")
    assert row["after"]["deny"] == [{"prefix": "51900", "note": "premium"}]


def test_a_refused_call_shows_on_the_alerts_page(web, db_url) -> None:  # type: ignore[no-untyped-def]
    admin = _session(web, "admin")
    _account_form(admin, deny="51900 premium")
    viewer = _session(web, "viewer")
    assert 'id="fraud-empty"' in viewer.get("/dashboard/alerts").get_data(as_text=True)
    body = call_body(new_uuid(), "100001", "51900555")
    resp = web.test_client().post("/v1/authorize", json=body, auth=FS_AUTH)
    assert resp.get_json()["reason"] == "destination_denied"
    page = viewer.get("/dashboard/alerts").get_data(as_text=True)
    assert 'id="fraud-alerts"' in page and "destination_denied" in page
    assert "51900555" in page and "deny 51900 (account)" in page
    account = viewer.get("/dashboard/accounts/100001/controls").get_data(as_text=True)
    assert 'id="account-alerts"' in account
