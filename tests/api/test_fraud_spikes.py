"""Spend-spike alerts: evaluated when charges land (a real CDR through intake), against the
trailing 7-day hourly average; one alert per spike; they never refuse a call."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import FS_AUTH, TEST_PBX, call_body
from fraud_helpers import (
    alerts,
    audits,
    execute,
    new_uuid,
    outbox,
    past_charge,
    reset_settings,
)

from sidecar.simulator.cdr_template import build_cdr


@pytest.fixture
def history(seed, db_url):  # type: ignore[no-untyped-def]
    """Account 100001, ten days old, that spent 24.00 a day for the last 7 days: an hourly
    average of 1.00. Calls to 51 cost 0.60 a minute."""
    reset_settings(db_url, spike_min_spend="1")
    seed.account("100001", balance="500", rates=[("51", "0.60")])
    execute(db_url, "UPDATE accounts SET created_at = now() - interval '10 days'")
    now = datetime.now(UTC)
    for day in range(7):
        past_charge(db_url, "100001", "24.00", now - timedelta(days=day, hours=2))
    past_charge(db_url, "100001", "99.00", now - timedelta(days=8))  # older than the window
    return "100001"


def _call(client, minutes: int, number: str = "100001") -> dict:  # type: ignore[no-untyped-def, type-arg]
    """An authorized call of ``minutes`` minutes, its CDR posted: charged 0.60 a minute."""
    uuid = new_uuid()
    auth = client.post(
        "/v1/authorize", json=call_body(uuid, number, "51987654321"), auth=FS_AUTH
    ).get_json()
    assert auth["authorized"], auth
    answer_us = int(time.time() * 1e6) - minutes * 60_000_000
    cdr = build_cdr(uuid, number, "51987654321", answer_us, minutes * 60_000_000, TEST_PBX)
    resp = client.post(f"/freeswitch/cdr?uuid=a_{uuid}", data=cdr, content_type="text/xml",
                       auth=FS_AUTH)  # fmt: skip
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def _a_minute_later(db_url: str) -> None:
    """What a minute does: the trailing average is computed again, a spike may be confirmed
    on its alert again."""
    execute(db_url, "UPDATE account_spend SET averaged_at = averaged_at - interval '2 minutes'")
    execute(db_url, "UPDATE fraud_alerts SET last_at = last_at - interval '2 minutes'")


def test_an_hour_at_n_times_the_average_alerts_once(client, history, db_url) -> None:  # type: ignore[no-untyped-def]
    assert _call(client, 6)["cost"] == "3.6000"  # 3.60 in the hour: under 5 x 1.00
    assert _call(client, 1)["cost"] == "0.6000"  # 4.20
    assert alerts(db_url, "spend_spike") == []
    _call(client, 2)  # 5.40 >= 5 x 1.00: a spike, seen by the charge that makes it
    (alert,) = alerts(db_url, "spend_spike")
    assert alert["account"] == "100001" and alert["occurrences"] == 1
    detail = alert["detail"]
    assert (detail["last_hour"], detail["hourly_average"], detail["factor"]) == (
        "5.4000", "1.0000", "5.00",
    )  # fmt: skip
    assert detail["hours_averaged"] == 168
    (hook,) = outbox(db_url, "fraud.spend_spike")
    assert hook["payload"]["detail"]["last_hour"] == "5.4000"
    (row,) = audits(db_url, "fraud.spend_spike")
    assert row["target"] == "account:100001" and row["actor"] == "apolo:spend"
    # the spike goes on: the same alert, confirmed at most once a minute; no second alert,
    # no second webhook
    _call(client, 3)
    assert [a["occurrences"] for a in alerts(db_url, "spend_spike")] == [1]
    _a_minute_later(db_url)
    _call(client, 3)
    (alert,) = alerts(db_url, "spend_spike")
    assert alert["occurrences"] == 2 and alert["detail"]["last_hour"] == "9.0000"
    assert len(outbox(db_url, "fraud.spend_spike")) == 1
    assert len(audits(db_url, "fraud.spend_spike")) == 1
    # it alerts and does not block
    assert _call(client, 1)["billing_status"] == "charged"


def test_a_spike_confirmed_over_an_hour_ago_is_over(client, history, db_url) -> None:  # type: ignore[no-untyped-def]
    _call(client, 9)
    assert len(alerts(db_url, "spend_spike")) == 1
    execute(db_url, "UPDATE fraud_alerts SET first_at = first_at - interval '2 hours',"
            " last_at = last_at - interval '2 hours'")  # fmt: skip
    _call(client, 1)
    assert [a["occurrences"] for a in alerts(db_url, "spend_spike")] == [1, 1]
    assert len(outbox(db_url, "fraud.spend_spike")) == 2


def test_the_factor_is_set_per_account_and_zero_is_off(client, history, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    admin = {"Authorization": "Bearer " + seed.token("admin")}
    resp = client.patch("/v1/accounts/100001/controls", json={"spend_spike_factor": "20"},
                        headers=admin)  # fmt: skip
    assert resp.status_code == 200
    _call(client, 15)  # 9.00: 9 x the average, under 20
    assert alerts(db_url, "spend_spike") == []
    client.patch("/v1/accounts/100001/controls", json={"spend_spike_factor": "0"}, headers=admin)
    _call(client, 30)  # 27.00 in the hour: no spike alerts for this account at all
    assert alerts(db_url, "spend_spike") == []
    client.patch("/v1/accounts/100001/controls", json={"spend_spike_factor": None}, headers=admin)
    client.patch("/v1/fraud/settings", json={"spike_factor": "0"}, headers=admin)
    _call(client, 1)
    assert alerts(db_url, "spend_spike") == []  # off by default for everyone
    client.patch("/v1/fraud/settings", json={"spike_factor": "25"}, headers=admin)
    _call(client, 1)  # 28.20 >= 25 x 1.00
    assert len(alerts(db_url, "spend_spike")) == 1


def test_an_account_without_history_alerts_from_the_least_spend(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(db_url)  # least spend in the hour: 10.00
    seed.account("100002", balance="500", rates=[("51", "0.60")])
    _call(client, 16, "100002")  # 9.60
    assert alerts(db_url, "spend_spike") == []
    _call(client, 1, "100002")  # 10.20: no history, so any hour this large is a spike
    (alert,) = alerts(db_url, "spend_spike")
    assert alert["detail"]["hourly_average"] == "0.0000" and alert["detail"]["hours_averaged"] == 1
