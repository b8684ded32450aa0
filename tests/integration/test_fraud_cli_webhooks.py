"""Fraud alerts leave as signed webhooks (the low-balance delivery loop); the `apolo
controls` and `apolo cucm devices` commands configure and inspect with the API's rules."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from click.testing import CliRunner
from conftest import FS_AUTH, call_body
from fraud_helpers import alerts, audits, new_uuid, query, reset_settings
from psycopg.rows import dict_row
from test_alerts_webhook import SECRET, receiver, settings  # noqa: F401 - receiver: fixture
from unit.cucm.cucm_rows import DAMHAU_CDR, SIETE_CDR

from sidecar.cli.main import cli
from sidecar.services.alerts import deliver_due, verify

pytestmark = pytest.mark.integration


@pytest.fixture
def hooks(receiver):  # type: ignore[no-untyped-def]  # noqa: F811 - test_alerts_webhook's
    return receiver


@pytest.fixture
def apolo(seed, db_url, monkeypatch):  # type: ignore[no-untyped-def]
    reset_settings(db_url)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("USER", "ops")

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, list(args))

    return run


def test_each_fraud_alert_is_delivered_signed(client, seed, db_url, hooks) -> None:  # type: ignore[no-untyped-def]
    reset_settings(db_url)
    seed.account("100001", balance="50", rates=[("51", "0.60")])
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE accounts SET max_calls_per_minute = 1 WHERE number = '100001'")
        c.execute("INSERT INTO destination_rules (account_id, verdict, prefix) SELECT id, 'deny',"
                  " '51900' FROM accounts WHERE number = '100001'")  # fmt: skip
    for callee in ("51900123", "51987654321", "51987654321", "51900999"):
        client.post("/v1/authorize", json=call_body(new_uuid(), "100001", callee), auth=FS_AUTH)
    with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as conn:
        assert deliver_due(conn, settings(hooks)) == (2, 0)
        assert deliver_due(conn, settings(hooks)) == (0, 0)
    events = {}
    for hit in hooks.seen:
        headers = hit["headers"]
        assert verify(SECRET, headers["X-Apolo-Timestamp"], hit["body"],
                      headers["X-Apolo-Signature"], time.time())  # fmt: skip
        payload = json.loads(hit["body"])
        assert headers["X-Apolo-Event"] == payload["event"]
        events[payload["event"]] = payload
    assert set(events) == {"fraud.destination_denied", "fraud.calls_per_minute"}
    denied = events["fraud.destination_denied"]
    assert denied["account"] == "100001" and denied["detail"]["callee"] == "51900123"
    assert denied["at"].endswith("Z") and denied["alert_id"] == alerts(db_url)[0]["id"]
    assert events["fraud.calls_per_minute"]["detail"]["limit"] == 1
    delivered = query(db_url, "SELECT count(*) AS n FROM webhook_outbox"
                      " WHERE delivered_at IS NOT NULL AND fraud_alert_id IS NOT NULL")  # fmt: skip
    assert delivered[0]["n"] == 2


def test_cli_sets_and_shows_account_controls(apolo, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", rates=[("51", "0.60")])
    result = apolo("controls", "account", "100001", "--deny", "1900:premium", "--deny", "881",
                   "--calls-per-minute", "10", "--daily-limit", "20.00", "--time-zone",
                   "Europe/Madrid")  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(apolo("controls", "account", "100001").output)
    assert shown["deny"] == [{"prefix": "1900", "note": "premium"}, {"prefix": "881", "note": ""}]
    assert (shown["max_calls_per_minute"], shown["daily_spend_limit"], shown["time_zone"]) == (
        10, "20.0000", "Europe/Madrid",
    )  # fmt: skip
    (row,) = audits(db_url, "controls.account.update")
    assert row["actor"] == "cli:ops" and row["after"]["time_zone"] == "Europe/Madrid"
    cleared = apolo("controls", "account", "100001", "--no-deny", "--calls-per-minute", "none")
    assert cleared.exit_code == 0, cleared.output
    shown = json.loads(cleared.output)
    assert shown["deny"] == [] and shown["max_calls_per_minute"] is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["controls", "account", "999999", "--deny", "1900"], "no account 999999"),
        (["controls", "account", "100001", "--deny", "19x0"], "is not a prefix"),
        (["controls", "account", "100001", "--daily-limit", "-1"], "must not be negative"),
        (["controls", "account", "100001", "--calls-per-minute", "0"], "from 1 to 1000"),
        (["controls", "account", "100001", "--time-zone", "Nowhere/City"], "not a time zone"),
        (["controls", "plan", "no-such-plan", "--deny", "1"], "no rate plan"),
        (["controls", "settings", "--spike-factor", "0.9"], "greater than 1"),
        (["controls", "settings", "--alert-window", "-5"], "0 to 86400"),
    ],
)
def test_cli_refuses_bad_configuration(apolo, seed, db_url, args, words) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    result = apolo(*args)
    assert result.exit_code == 1 and words in result.output, result.output
    assert (
        query(db_url, "SELECT count(*) AS n FROM audit_log WHERE action LIKE 'controls.%%'")[0]["n"]
        == 0
    )


def test_cli_plan_rules_settings_and_alerts(apolo, seed, db_url, client) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    seed.account("100001", plan=plan)
    result = apolo("controls", "plan", plan, "--allow", "51", "--deny", "51900:premium")
    assert result.exit_code == 0, result.output
    assert json.loads(apolo("controls", "plan", plan).output)["deny"][0]["prefix"] == "51900"
    assert apolo("controls", "settings", "--spike-factor", "8").exit_code == 0
    assert json.loads(apolo("controls", "settings").output)["spike_factor"] == "8.00"
    client.post("/v1/authorize", json=call_body(new_uuid(), "100001", "51900111"), auth=FS_AUTH)
    listed = json.loads(apolo("controls", "alerts", "--account", "100001").output)
    assert [a["control"] for a in listed] == ["destination_denied"]
    assert listed[0]["detail"]["rule"] == "deny 51900 (plan)"


def test_cucm_devices_lists_what_the_files_call_and_what_is_billed(apolo) -> None:  # type: ignore[no-untyped-def]
    result = apolo("cucm", "devices", str(SIETE_CDR), str(DAMHAU_CDR))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("pattern: ^(?:S\\d+/")
    # the damhau rows all go to SEP987654321; siete: one phone call, two recording legs
    assert lines[2:] == ["no\t3\tSEP987654321", "no\t2\t(none)", "no\t1\tSEPCC8E7148AD29"]
    tried = apolo("cucm", "devices", str(DAMHAU_CDR), "--pattern", "^SEP98")
    assert tried.output.splitlines()[2:] == ["yes\t3\tSEP987654321"]
    assert apolo("cucm", "devices", str(DAMHAU_CDR), "--pattern", "(").exit_code == 2
