"""Fraud controls through the API on the real database: configuration (validated, audited),
and each control as /v1/authorize and /freeswitch/dialplan meet it (denial reason, audit
row, alert, webhook queued)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from conftest import FS_AUTH, call_body
from fraud_helpers import (
    alerts,
    audits,
    execute,
    new_uuid,
    outbox,
    past_charge,
    query,
    reset_settings,
)


@pytest.fixture
def admin(seed, db_url):  # type: ignore[no-untyped-def]
    reset_settings(db_url)
    return {"Authorization": f"Bearer {seed.token('admin')}"}


def _auth(client, callee: str, caller: str = "100001", uuid: str | None = None):  # type: ignore[no-untyped-def]
    resp = client.post("/v1/authorize", json=call_body(uuid or new_uuid(), caller, callee),
                       auth=FS_AUTH)  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _patch(client, path: str, headers, **body):  # type: ignore[no-untyped-def]
    return client.patch(path, json=body, headers=headers)


# --------------------------------------------------------------------------- configuration


def test_account_controls_are_set_shown_and_audited(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", rates=[("51", "0.60")])
    shown = client.get("/v1/accounts/100001/controls", headers=admin).get_json()
    assert shown["allow"] == shown["deny"] == [] and shown["time_zone"] == "UTC"
    assert shown["daily_spend_limit"] is None and shown["max_calls_per_minute"] is None
    resp = _patch(client, "/v1/accounts/100001/controls", admin,
                  deny=["1900", {"prefix": "+881", "note": "satellite"}],
                  max_calls_per_minute=5, daily_spend_limit="25.50",
                  time_zone="America/Lima", spend_spike_factor="3")  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["deny"] == [{"prefix": "1900", "note": ""}, {"prefix": "881", "note": "satellite"}]
    assert (body["max_calls_per_minute"], body["daily_spend_limit"], body["time_zone"],
            body["spend_spike_factor"]) == (5, "25.5000", "America/Lima", "3.00")  # fmt: skip
    assert client.get("/v1/accounts/100001/controls", headers=admin).get_json() == body
    (row,) = audits(db_url, "controls.account.update")
    assert row["target"] == "account:100001" and row["actor"].startswith("token:")
    assert row["before"]["deny"] == [] and row["before"]["daily_spend_limit"] is None
    assert row["after"]["daily_spend_limit"] == "25.5000" and len(row["after"]["deny"]) == 2
    # null clears a limit; a list given replaces the whole list
    cleared = _patch(client, "/v1/accounts/100001/controls", admin, daily_spend_limit=None,
                     deny=["1900"]).get_json()  # fmt: skip
    assert cleared["daily_spend_limit"] is None and [r["prefix"] for r in cleared["deny"]] == [
        "1900"
    ]
    assert cleared["max_calls_per_minute"] == 5  # fields not sent stay


def test_plan_rules_and_settings_are_set_and_audited(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    resp = _patch(client, f"/v1/rate-plans/{plan}/controls", admin, allow=["51"],
                  deny=[{"prefix": "51900", "note": "premium"}])  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    assert client.get(f"/v1/rate-plans/{plan}/controls", headers=admin).get_json() == {
        "plan": plan, "allow": [{"prefix": "51", "note": ""}],
        "deny": [{"prefix": "51900", "note": "premium"}],
    }  # fmt: skip
    (row,) = audits(db_url, "controls.plan.update")
    assert row["target"] == f"rate_plan:{plan}" and row["before"]["allow"] == []
    resp = _patch(client, "/v1/fraud/settings", admin, spike_factor="4.5", spike_min_spend="2",
                  alert_window_seconds=60)  # fmt: skip
    assert resp.status_code == 200
    assert {k: v for k, v in resp.get_json().items() if k != "updated_at"} == {
        "spike_factor": "4.50", "spike_min_spend": "2.0000", "alert_window_seconds": 60,
    }  # fmt: skip
    (row,) = audits(db_url, "controls.settings.update")
    assert row["before"]["spike_factor"] == "5.00" and row["after"]["spike_factor"] == "4.50"


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/accounts/999999/controls", {"deny": ["1900"]}, 404, "no account 999999"),
        ("/v1/rate-plans/nope/controls", {"deny": ["1900"]}, 404, "no rate plan"),
        ("/v1/accounts/100001/controls", {"deny": ["19a0"]}, 400, "'19a0' is not a prefix"),
        ("/v1/accounts/100001/controls", {"deny": [""]}, 400, "is not a prefix"),
        ("/v1/accounts/100001/controls", {"allow": ["1" * 33]}, 400, "1 to 32 digits"),
        ("/v1/accounts/100001/controls", {"deny": "1900"}, 400, "must be a list"),
        ("/v1/accounts/100001/controls", {"deny": ["1900", "+1900"]}, 400, "listed twice"),
        ("/v1/accounts/100001/controls", {"allow": ["1900"], "deny": ["1900"]}, 400,
         "both allowed and denied"),
        ("/v1/accounts/100001/controls", {"allow": ["44"]}, 400, "both allowed and denied"),
        ("/v1/accounts/100001/controls", {"daily_spend_limit": "-5"}, 400, "must not be negative"),
        ("/v1/accounts/100001/controls", {"daily_spend_limit": "0"}, 400, "greater than zero"),
        ("/v1/accounts/100001/controls", {"daily_spend_limit": True}, 400, "decimal string"),
        ("/v1/accounts/100001/controls", {"max_calls_per_minute": -3}, 400, "from 1 to 1000"),
        ("/v1/accounts/100001/controls", {"max_calls_per_minute": 0}, 400, "from 1 to 1000"),
        ("/v1/accounts/100001/controls", {"max_calls_per_minute": "5"}, 400, "whole number"),
        ("/v1/accounts/100001/controls", {"spend_spike_factor": "0.5"}, 400, "greater than 1"),
        ("/v1/accounts/100001/controls", {"spend_spike_factor": "-2"}, 400, "greater than 1"),
        ("/v1/accounts/100001/controls", {"time_zone": "Mars/Olympus"}, 400, "not a time zone"),
        ("/v1/accounts/100001/controls", {"time_zone": "UTC+3"}, 400, "not a time zone"),
        ("/v1/accounts/100001/controls", {"colour": "red"}, 400, "unknown fields"),
        ("/v1/accounts/100001/controls", {}, 400, "nothing to change"),
        ("/v1/fraud/settings", {"spike_factor": "1"}, 400, "greater than 1"),
        ("/v1/fraud/settings", {"spike_min_spend": "-1"}, 400, "must not be negative"),
        ("/v1/fraud/settings", {"alert_window_seconds": -1}, 400, "0 to 86400"),
    ],
)  # fmt: skip
def test_bad_configuration_is_refused_and_changes_nothing(  # type: ignore[no-untyped-def]
    client, seed, admin, db_url, path, body, status, words
) -> None:
    seed.account("100001", rates=[("51", "0.60")])
    assert _patch(client, "/v1/accounts/100001/controls", admin, deny=["44"]).status_code == 200
    before = query(db_url, "SELECT count(*) AS n FROM audit_log")[0]["n"]
    state = client.get("/v1/accounts/100001/controls", headers=admin).get_json()
    settings = client.get("/v1/fraud/settings", headers=admin).get_json()
    resp = client.patch(path, json=body, headers=admin)
    assert resp.status_code == status, resp.get_json()
    error = resp.get_json()["error"]
    assert words in error["message"], error
    assert query(db_url, "SELECT count(*) AS n FROM audit_log")[0]["n"] == before
    assert client.get("/v1/accounts/100001/controls", headers=admin).get_json() == state
    assert client.get("/v1/fraud/settings", headers=admin).get_json() == settings


def test_only_admins_write_controls(client, seed, admin) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    for role in ("operator", "viewer"):
        headers = {"Authorization": f"Bearer {seed.token(role)}"}
        assert client.get("/v1/accounts/100001/controls", headers=headers).status_code == 200
        resp = client.patch("/v1/accounts/100001/controls", json={"deny": ["1"]}, headers=headers)
        assert resp.status_code == 403
        resp = client.patch("/v1/fraud/settings", json={"spike_factor": "2"}, headers=headers)
        assert resp.status_code == 403
    assert client.patch("/v1/fraud/settings", json={"spike_factor": "2"}).status_code == 401


# --------------------------------------------------------------------------- destinations


def test_longest_prefix_decides_and_the_account_beats_its_plan(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("1", "0.60"), ("44", "0.60"), ("51", "0.60"), ("881", "6.00")])
    seed.account("100001", balance="1000", plan=plan)  # 36.00 reserved a call
    # plan: no US, no UK, no satellite, no Peruvian premium rate
    _patch(client, f"/v1/rate-plans/{plan}/controls", admin, deny=["1", "44", "881", "51900"])
    # the account may call the US (an exception to the plan's deny 1) but still not US
    # premium rate (1900, longer), and one premium Peruvian range the plan denies
    _patch(client, "/v1/accounts/100001/controls", admin, allow=["1", "51900"],
           deny=["1900"])  # fmt: skip
    decided = {n: _auth(client, n)["reason"] for n in
               ("12125550100", "19005550100", "447700900123", "881612345678", "51900123",
                "51987654321")}  # fmt: skip
    assert decided == {
        "12125550100": "authorized",  # account allow 1 beats plan deny 1 (same prefix)
        "19005550100": "destination_denied",  # account deny 1900: the longest match
        "447700900123": "destination_denied",  # plan deny 44
        "881612345678": "destination_denied",  # plan deny 881
        "51900123": "authorized",  # account allow 51900 over plan deny 51900
        # no rule matches; both allow rules are exceptions to deny rules: allowed
        "51987654321": "authorized",
    }
    details = [a["after"]["rule"] for a in audits(db_url, "fraud.destination_denied")]
    assert details == ["deny 1900 (account)", "deny 44 (plan)", "deny 881 (plan)"]


def test_an_allow_rule_no_deny_covers_restricts_calls_to_the_allow_list(
    client, seed, admin, db_url
) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("1", "0.60"), ("44", "0.60"), ("51", "0.60"), ("0051", "0.60")])
    seed.account("100001", balance="1000", plan=plan)  # 36.00 reserved a call
    _patch(client, f"/v1/rate-plans/{plan}/controls", admin, deny=["51900"])
    # domestic (51) and Peru dialled internationally (0051) only
    _patch(client, "/v1/accounts/100001/controls", admin, allow=["51", "0051"])
    numbers = ("51987654321", "0051987654321", "51900123", "447700900123", "12125550100")
    decided = {n: _auth(client, n)["reason"] for n in numbers}
    assert decided == {
        "51987654321": "authorized", "0051987654321": "authorized",
        "51900123": "destination_denied",  # the plan's deny 51900 is longer than allow 51
        "447700900123": "destination_denied", "12125550100": "destination_denied",
    }  # fmt: skip
    details = [a["after"]["rule"] for a in audits(db_url, "fraud.destination_denied")]
    assert details == ["deny 51900 (plan)", "no allow rule matches", "no allow rule matches"]
    # a plan's restriction applies to its accounts too
    _patch(client, "/v1/accounts/100001/controls", admin, allow=[])
    _patch(client, f"/v1/rate-plans/{plan}/controls", admin, allow=["44"])
    assert _auth(client, "447700900123")["reason"] == "authorized"
    assert _auth(client, "51987654321")["reason"] == "destination_denied"


def test_a_denied_destination_is_refused_audited_alerted_and_webhooked(  # type: ignore[no-untyped-def]
    client, seed, admin, db_url
) -> None:
    seed.account("100001", balance="50", rates=[("51", "0.60"), ("881", "9.00")])
    _patch(client, "/v1/accounts/100001/controls", admin,
           deny=[{"prefix": "881", "note": "satellite"}])  # fmt: skip
    uuid = new_uuid()
    body = _auth(client, "+881 6 1234 5678", uuid=uuid)
    assert (body["authorized"], body["reason"], body["reserved"]) == (
        False, "destination_denied", None,
    )  # fmt: skip
    assert seed.balance("100001")["reserved"] == "0.0000"
    (audit,) = audits(db_url, "fraud.destination_denied")
    assert audit["target"] == "account:100001" and audit["actor"] == "apolo:authorize"
    assert audit["after"]["call_uuid"] == uuid and audit["after"]["callee"] == "88161234567" + "8"
    (alert,) = alerts(db_url, "destination_denied")
    assert alert["account"] == "100001" and alert["occurrences"] == 1
    (hook,) = outbox(db_url, "fraud.destination_denied")
    assert hook["fraud_alert_id"] == alert["id"]
    assert hook["payload"]["account"] == "100001" and hook["payload"]["alert_id"] == alert["id"]
    assert hook["payload"]["detail"]["rule"] == "deny 881 (account)"
    # an allowed destination is untouched by the rules
    assert _auth(client, "51987654321")["authorized"] is True


def test_repeated_refusals_count_on_one_alert_in_the_window(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50", rates=[("1", "0.60")])
    _patch(client, "/v1/accounts/100001/controls", admin, deny=["1900"])
    for _ in range(4):
        assert _auth(client, "19005550100")["reason"] == "destination_denied"
    assert len(audits(db_url, "fraud.destination_denied")) == 4  # one audit row each
    (alert,) = alerts(db_url)
    assert alert["occurrences"] == 4 and len(outbox(db_url, "fraud.destination_denied")) == 1
    _patch(client, "/v1/fraud/settings", admin, alert_window_seconds=0)
    _auth(client, "19005550100")
    assert [a["occurrences"] for a in alerts(db_url)] == [4, 1]
    assert len(outbox(db_url, "fraud.destination_denied")) == 2


def test_the_xml_curl_route_refuses_a_denied_destination(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50", rates=[("51", "0.60")])
    _patch(client, "/v1/accounts/100001/controls", admin, deny=["51900"])
    form = {
        "section": "dialplan", "Hunt-Context": "default", "Caller-Context": "default",
        "Unique-ID": new_uuid(), "Caller-Caller-ID-Number": "100001",
        "Caller-Destination-Number": "51900123456", "Hunt-Destination-Number": "51900123456",
        "Caller-Username": "100001", "variable_accountcode": "100001",
        "variable_sip_authorized": "true",
    }  # fmt: skip
    resp = client.post("/freeswitch/dialplan", data=form, auth=FS_AUTH)
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert "destination_denied" in text and "bridge" not in text
    assert len(alerts(db_url, "destination_denied")) == 1


# --------------------------------------------------------------------------- calls per minute


def test_calls_per_minute_is_a_sliding_window(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50", rates=[("51", "0.01")])
    _patch(client, "/v1/accounts/100001/controls", admin, max_calls_per_minute=3)
    reasons = [_auth(client, "51987654321")["reason"] for _ in range(5)]
    assert reasons == ["authorized"] * 3 + ["calls_per_minute"] * 2
    (alert,) = alerts(db_url, "calls_per_minute")
    assert alert["occurrences"] == 2 and alert["detail"]["limit"] == 3
    assert alert["detail"]["calls_last_minute"] == 3
    assert len(audits(db_url, "fraud.calls_per_minute")) == 2
    assert len(outbox(db_url, "fraud.calls_per_minute")) == 1
    # a refused call is not counted; once the oldest authorization is a minute old, one more
    execute(db_url, "UPDATE accounts SET recent_calls[1] = recent_calls[1] - interval '61 s'")
    assert [_auth(client, "51987654321")["reason"] for _ in range(2)] == [
        "authorized", "calls_per_minute",
    ]  # fmt: skip
    # a new limit counts the calls already authorized in the window
    _patch(client, "/v1/accounts/100001/controls", admin, max_calls_per_minute=2)
    assert _auth(client, "51987654321")["reason"] == "calls_per_minute"
    # re-authorizing a call already authorized is not another call
    _patch(client, "/v1/accounts/100001/controls", admin, max_calls_per_minute=1)
    execute(db_url, "UPDATE accounts SET recent_calls ="
            " ARRAY(SELECT t - interval '61 s' FROM unnest(recent_calls) t)")  # fmt: skip
    uuid = new_uuid()
    assert _auth(client, "51987654321", uuid=uuid)["reason"] == "authorized"
    assert _auth(client, "51987654321", uuid=uuid)["reason"] == "authorized"
    assert _auth(client, "51987654321")["reason"] == "calls_per_minute"


# --------------------------------------------------------------------------- daily spend


def test_daily_limit_counts_charged_plus_reserved_and_cuts_the_reservation(  # type: ignore[no-untyped-def]
    client, seed, admin, db_url
) -> None:
    seed.account("100001", balance="100", rates=[("51", "0.60")])  # 60/60 s increments
    _patch(client, "/v1/accounts/100001/controls", admin, daily_spend_limit="5.00")
    past_charge(db_url, "100001", "2.40", datetime.now(UTC))  # charged today
    first = _auth(client, "51987654321")
    # 5.00 - 2.40 = 2.60 left today: the reservation is cut to it (4 minutes and a bit)
    assert first["authorized"] and first["reserved"] == "2.6000" and first["max_duration"] == 240
    refused = _auth(client, "51987654321")
    assert (refused["authorized"], refused["reason"]) == (False, "daily_spend_limit")
    (alert,) = alerts(db_url, "daily_spend_limit")
    assert alert["detail"]["spent_today"] == "5.0000" and alert["detail"]["limit"] == "5.0000"
    assert len(outbox(db_url, "fraud.daily_spend_limit")) == 1
    assert len(audits(db_url, "fraud.daily_spend_limit")) == 1
    shown = client.get("/v1/accounts/100001/controls", headers=admin).get_json()
    assert shown["spent_today"] == "5.0000"
    # the balance would pay: only the limit refuses
    assert Decimal(seed.balance("100001")["available"]) > 90


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Lima", "Pacific/Pago_Pago"])
def test_the_day_starts_at_the_accounts_local_midnight(client, seed, admin, db_url, zone) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="100", rates=[("51", "0.60")])
    _patch(client, "/v1/accounts/100001/controls", admin, daily_spend_limit="3.00",
           time_zone=zone)  # fmt: skip
    local_midnight = datetime.now(ZoneInfo(zone)).replace(hour=0, minute=0, second=0,
                                                          microsecond=0)  # fmt: skip
    past_charge(db_url, "100001", "50.00", local_midnight - timedelta(minutes=1))  # yesterday
    past_charge(db_url, "100001", "1.80", local_midnight)  # today, from its first instant
    shown = client.get("/v1/accounts/100001/controls", headers=admin).get_json()
    assert shown["spent_today"] == "1.8000" and shown["time_zone"] == zone
    assert datetime.fromisoformat(shown["day_started_at"]) == local_midnight
    body = _auth(client, "51987654321")
    assert body["authorized"] and body["reserved"] == "1.2000"
    assert _auth(client, "51987654321")["reason"] == "daily_spend_limit"
