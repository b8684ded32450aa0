"""`apolo control` extensions respect the daily spend limit (apolo_extend), in the service
and in the worker driving the ESL peer."""

from __future__ import annotations

import time
import uuid as uuid_mod
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from control_support import (  # noqa: F401 - fixtures used by name
    authorize,
    control_app,
    control_settings,
    esl_peer,
    reservation,
    running,
    wait_for,
)
from fraud_helpers import alerts, audits, execute, outbox, reset_settings
from psycopg.rows import dict_row

from sidecar.control.decide import Policy
from sidecar.services.extension import extend_call

pytestmark = pytest.mark.integration
GRACE = timedelta(seconds=600)
MINUTE_BLOCKS = Policy(extend_threshold=60, block_seconds=60, max_call_seconds=3600,
                       kill_after_seconds=2)  # fmt: skip


def _extend(db_url: str, call: str, paid: int):  # type: ignore[no-untyped-def]
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        result = extend_call(c, call, paid, MINUTE_BLOCKS, GRACE)
        c.commit()
    return result


def test_extensions_grow_only_up_to_the_days_limit(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(db_url)
    seed.account("100001", balance="100.00", rates=[("51", "0.60")])  # 60/60 s increments
    execute(db_url, "UPDATE accounts SET daily_spend_limit = 11.00 WHERE number = '100001'")
    call = str(uuid_mod.uuid4())
    auth = authorize(client, call, "100001")  # a 300 s block: 3.00
    assert auth["reserved"] == "3.0000" and auth["max_duration"] == 300
    paid, steps = 300, []
    while True:
        ext = _extend(db_url, call, paid)
        steps.append((ext.reason, str(ext.amount), ext.paid_seconds))
        if not ext.extended:
            break
        paid = ext.paid_seconds
    # each 60 s block costs 0.60 until 11.00 - 10.80 = 0.20 is left, less than a minute
    assert steps[-2:] == [("extended", "10.8000", 1080), ("daily_spend_limit", "10.8000", 1080)]
    assert len(steps) == 14  # 13 blocks granted: 3.00 + 13 x 0.60 = 10.80
    res = reservation(db_url, call)
    assert res["amount"] == Decimal("10.8000") and res["extensions"] == 13
    assert seed.balance("100001")["reserved"] == "10.8000"
    (alert,) = alerts(db_url, "daily_spend_limit")
    assert alert["detail"]["extension"] is True and alert["detail"]["spent_today"] == "10.8000"
    (row,) = audits(db_url, "fraud.daily_spend_limit")
    assert row["actor"] == "apolo:control" and row["after"]["call_uuid"] == call
    assert len(outbox(db_url, "fraud.daily_spend_limit")) == 1
    # without the limit the same balance pays the next block
    execute(db_url, "UPDATE accounts SET daily_spend_limit = NULL WHERE number = '100001'")
    assert _extend(db_url, call, paid).reason == "extended"


def test_the_worker_stops_at_the_limit(app, client, seed, db_url, redis_url, peer) -> None:  # type: ignore[no-untyped-def]
    reset_settings(db_url)
    seed.account("100001", balance="100.00", rates=[("51", "0.60")])
    execute(db_url, "UPDATE accounts SET daily_spend_limit = 3.50 WHERE number = '100001'")
    call = str(uuid_mod.uuid4())
    assert authorize(client, call, "100001")["reserved"] == "3.0000"
    with running(control_settings(db_url, redis_url, [peer])):
        peer.answer(call, time.time() - 250)  # 50 s left: the worker tries to extend
        wait_for(lambda: alerts(db_url, "daily_spend_limit"), what="the refused extension")
        time.sleep(0.3)
        commands = peer.call_commands(call)
    assert not any(c.startswith("sched_del") for c in commands)  # the hangup stays put
    res = reservation(db_url, call)
    assert res["amount"] == Decimal("3.0000") and res["extensions"] == 0
    assert audits(db_url, "fraud.daily_spend_limit")[0]["actor"] == "apolo:control"
