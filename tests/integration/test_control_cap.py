"""Per-call spending cap at authorization and at extension; parallel extensions of one account."""

from __future__ import annotations

import threading
import uuid as uuid_mod
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from control_support import (
    BLOCK,
    authorize,
    control_app,  # noqa: F401 - fixtures used by name
    reservation,
)
from psycopg.rows import dict_row

from sidecar.control.decide import Policy
from sidecar.services.extension import extend_call, paid_seconds

pytestmark = pytest.mark.integration
POLICY = Policy(
    extend_threshold=60, block_seconds=BLOCK, max_call_seconds=3600, kill_after_seconds=2
)
GRACE = timedelta(seconds=600)


def _sql(db_url: str, statement: str, *args: object) -> None:
    with psycopg.connect(db_url) as c:
        c.execute(statement, args)


def _extend(db_url: str, call: str, paid: int):  # type: ignore[no-untyped-def]
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        result = extend_call(c, call, paid, POLICY, GRACE)
        c.commit()
    return result


def test_account_cap_limits_the_reservation_and_the_hangup(app, client, seed, db_url):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    _sql(db_url, "UPDATE accounts SET max_call_cost = 1.20 WHERE number = '100001'")
    auth = authorize(client, str(uuid_mod.uuid4()), "100001")
    assert auth["authorized"] and auth["reserved"] == "1.2000"
    assert auth["max_duration"] == 120 and auth["sched_hangup_seconds"] == 119
    # authorization leaves the paid time to the worker, which stores it at answer
    row = reservation(db_url, auth["uuid"])
    assert row["max_duration"] is None
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        res = c.execute(
            "SELECT * FROM reservations WHERE call_uuid = %s", (auth["uuid"],)
        ).fetchone()
        assert paid_seconds(c, res, POLICY.block_seconds) == 120
        c.commit()
    assert reservation(db_url, auth["uuid"])["max_duration"] == 120


def test_the_tighter_of_account_and_plan_cap_applies(app, client, seed, db_url):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    _sql(db_url, "UPDATE accounts SET max_call_cost = 1.50 WHERE number = '100001'")
    _sql(
        db_url,
        "UPDATE rate_plans SET max_call_cost = 0.90"
        " WHERE id = (SELECT plan_id FROM accounts WHERE number = '100001')",
    )
    auth = authorize(client, str(uuid_mod.uuid4()), "100001")
    assert auth["reserved"] == "0.9000" and auth["max_duration"] == 60


def test_cap_below_the_first_increment_refuses_and_reserves_nothing(app, client, seed, db_url):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    _sql(db_url, "UPDATE accounts SET max_call_cost = 0.30 WHERE number = '100001'")
    auth = authorize(client, str(uuid_mod.uuid4()), "100001")
    assert not auth["authorized"] and auth["reason"] == "call_cost_cap"
    assert seed.balance("100001") == {
        "balance": "10.0000",
        "reserved": "0.0000",
        "available": "10.0000",
        "active_calls": "0",
    }


def test_cap_stops_extensions(app, client, seed, db_url):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    _sql(db_url, "UPDATE accounts SET max_call_cost = 4.50 WHERE number = '100001'")
    call = authorize(client, str(uuid_mod.uuid4()), "100001")["uuid"]
    first = _extend(db_url, call, BLOCK)
    assert first.extended and first.amount == Decimal("4.5000") and first.paid_seconds == 420
    second = _extend(db_url, call, first.paid_seconds)
    assert not second.extended and second.reason == "call_cost_cap"
    assert reservation(db_url, call)["amount"] == Decimal("4.5000")


def test_parallel_extensions_of_one_account_never_overspend(app, client, seed, db_url):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="29.00", rates=[("51", "0.60")])
    calls = [authorize(client, str(uuid_mod.uuid4()), "100001")["uuid"] for _ in range(8)]
    assert seed.balance("100001")["available"] == "5.0000"
    results: list = []
    start = threading.Barrier(len(calls))

    def run(call: str) -> None:
        start.wait()
        results.append(_extend(db_url, call, BLOCK))

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    extended = sorted(r.added for r in results if r.extended)
    # 5.00 was free: one full block (3.00) and what was left (2.00); the rest refused
    assert extended == [Decimal("2.0000"), Decimal("3.0000")]
    assert sorted(r.reason for r in results if not r.extended) == ["insufficient_balance"] * 6
    bal = seed.balance("100001")
    assert bal["reserved"] == "29.0000" and bal["available"] == "0.0000"
    total = sum(Decimal(reservation(db_url, c)["amount"]) for c in calls)
    assert total == Decimal("29.0000")
