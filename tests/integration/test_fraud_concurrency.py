"""Each fraud control holds across two real gunicorn sidecars under concurrency: the
requests of a burst are spread over both and released together."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from conftest import FS_AUTH, ROOT, SidecarProcess, call_body, start_sidecar
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

from sidecar.simulator.cdr_template import build_cdr

pytestmark = pytest.mark.integration
CALLEE = "51987654321"


@pytest.fixture(scope="module")
def pair(db_url: str, redis_url: str) -> Iterator[list[SidecarProcess]]:
    (ROOT / ".data").mkdir(exist_ok=True)
    sidecars = [
        start_sidecar(db_url, redis_url, APOLO_RESERVATION_SECONDS="60", APOLO_ACCESS_LOG="false")
        for _ in range(2)
    ]
    yield sidecars
    for s in sidecars:
        s.stop()


def burst(pair: list[SidecarProcess], jobs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """POST every (path, body) at once, alternating sidecars; the JSON answers, in order."""
    gate = threading.Barrier(len(jobs))

    def one(n: int) -> Any:
        path, body = jobs[n]
        session = requests.Session()
        url = pair[n % 2].url + path
        gate.wait()
        if path == "/freeswitch/cdr":
            resp = session.post(
                f"{url}?uuid=a_{body['uuid']}", data=body["xml"], auth=FS_AUTH, timeout=60,
                headers={"Content-Type": "text/xml"},
            )  # fmt: skip
        else:
            resp = session.post(url, json=body, auth=FS_AUTH, timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.json()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, range(len(jobs))))


def authorizations(number: str, callees: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [("/v1/authorize", call_body(new_uuid(), number, c)) for c in callees]


@pytest.fixture
def defaults(db_url: str) -> None:
    reset_settings(db_url)


def test_calls_per_minute_holds_across_sidecars(pair, seed, db_url, defaults) -> None:  # type: ignore[no-untyped-def]
    seed.account("300001", balance="100", rates=[("51", "0.10")])
    execute(db_url, "UPDATE accounts SET max_calls_per_minute = 5 WHERE number = '300001'")
    answers = burst(pair, authorizations("300001", [CALLEE] * 30))
    assert Counter(a["reason"] for a in answers) == {"authorized": 5, "calls_per_minute": 25}
    assert query(db_url, "SELECT count(*) AS n FROM reservations")[0]["n"] == 5
    assert seed.balance("300001")["active_calls"] == "5"
    (alert,) = alerts(db_url, "calls_per_minute")
    assert alert["occurrences"] == 25
    assert len(audits(db_url, "fraud.calls_per_minute")) == 25
    assert len(outbox(db_url, "fraud.calls_per_minute")) == 1


def test_daily_spend_limit_holds_across_sidecars(pair, seed, db_url, defaults) -> None:  # type: ignore[no-untyped-def]
    seed.account("300002", balance="100", rates=[("51", "0.60")])  # a 60 s reservation: 0.60
    execute(db_url, "UPDATE accounts SET daily_spend_limit = 3.00, time_zone = 'Asia/Kolkata'"
            " WHERE number = '300002'")  # fmt: skip
    past_charge(db_url, "300002", "0.60", datetime.now(UTC))  # 2.40 left today
    answers = burst(pair, authorizations("300002", [CALLEE] * 24))
    granted = [a for a in answers if a["authorized"]]
    assert len(granted) == 4 and {a["reserved"] for a in granted} == {"0.6000"}
    assert {a["reason"] for a in answers if not a["authorized"]} == {"daily_spend_limit"}
    assert seed.balance("300002")["reserved"] == "2.4000"  # charged 0.60 + reserved 2.40
    (alert,) = alerts(db_url, "daily_spend_limit")
    assert alert["occurrences"] == 20 and alert["detail"]["time_zone"] == "Asia/Kolkata"
    assert len(outbox(db_url, "fraud.daily_spend_limit")) == 1


def test_destination_rules_hold_across_sidecars_and_apply_at_once(
    pair, seed, db_url, defaults
) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("1", "0.10"), ("51", "0.10"), ("881", "5.00")])
    seed.account("300003", balance="100", plan=plan)
    admin = {"Authorization": f"Bearer {seed.token('admin')}"}
    resp = requests.patch(f"{pair[0].url}/v1/rate-plans/{plan}/controls", headers=admin,
                          json={"deny": ["1900", "881"]}, timeout=10)  # fmt: skip
    assert resp.status_code == 200, resp.text
    callees = ["19005550100", "881612345678", "12125550100", CALLEE] * 6
    answers = burst(pair, authorizations("300003", callees))
    decided = {(c, a["reason"]) for c, a in zip(callees, answers, strict=True)}
    assert decided == {
        ("19005550100", "destination_denied"), ("881612345678", "destination_denied"),
        ("12125550100", "authorized"), (CALLEE, "authorized"),
    }  # fmt: skip
    (alert,) = alerts(db_url, "destination_denied")
    assert alert["occurrences"] == 12
    assert len(audits(db_url, "fraud.destination_denied")) == 12
    # a rule written through one sidecar holds on the other from the next call on
    resp = requests.patch(f"{pair[0].url}/v1/accounts/300003/controls", headers=admin,
                          json={"deny": ["51"]}, timeout=10)  # fmt: skip
    assert resp.status_code == 200
    after = burst(pair[::-1], authorizations("300003", [CALLEE] * 4))
    assert {a["reason"] for a in after} == {"destination_denied"}


def test_one_spike_one_alert_across_sidecars(pair, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(db_url, spike_min_spend="1")
    seed.account("300004", balance="500", rates=[("51", "0.60")])
    execute(db_url, "UPDATE accounts SET created_at = now() - interval '10 days'")
    now = datetime.now(UTC)
    for day in range(7):  # an hourly average of 1.00
        past_charge(db_url, "300004", "24.00", now - timedelta(days=day, hours=2))
    calls = authorizations("300004", [CALLEE] * 16)
    assert {a["reason"] for a in burst(pair, calls)} == {"authorized"}
    answer_us = int(time.time() * 1e6) - 60_000_000
    cdrs = [("/freeswitch/cdr", {"uuid": body["uuid"], "xml": build_cdr(
        body["uuid"], "300004", CALLEE, answer_us, 60_000_000)}) for _, body in calls]  # fmt: skip
    settled = burst(pair, cdrs)
    assert {s["cost"] for s in settled} == {"0.6000"}
    # 16 x 0.60 = 9.60 in the hour, crossing 5 x 1.00 somewhere in the burst: one alert
    (alert,) = alerts(db_url, "spend_spike")
    assert Decimal(alert["detail"]["last_hour"]) >= Decimal("5.00")
    assert len(outbox(db_url, "fraud.spend_spike")) == 1
    assert len(audits(db_url, "fraud.spend_spike")) == 1
    assert query(db_url, "SELECT spent FROM account_spend WHERE slot > now() - interval '1 hour'"
                 )[0]["spent"] == Decimal("9.6000")  # fmt: skip
