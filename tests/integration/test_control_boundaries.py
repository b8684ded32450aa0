"""Mid-call control across a rate change: the paid time at answer and each extension are
computed across the boundary, and a call whose rates change gets its hangup moved at
answer (authorization priced it as if answered then)."""

from __future__ import annotations

import re
import time
import uuid as uuid_mod
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from control_support import (  # noqa: F401 - fixtures used by name
    BLOCK,
    authorize,
    control_app,
    control_settings,
    esl_peer,
    reservation,
    running,
    wait_for,
)
from psycopg.rows import dict_row

from sidecar.control.decide import Policy
from sidecar.repo import control as control_repo
from sidecar.repo import rates as rates_repo
from sidecar.services.extension import extend_call, paid_time

pytestmark = pytest.mark.integration
POLICY = Policy(extend_threshold=60, block_seconds=BLOCK, max_call_seconds=3600,
                kill_after_seconds=2)  # fmt: skip
GRACE = timedelta(seconds=600)


def _plan_changing_at(seed, change: datetime) -> str:  # type: ignore[no-untyped-def]
    """51 at 0.60/min until ``change``, 0.06/min from then on; 1 s increments."""
    name = seed.plan([])
    with psycopg.connect(seed.url, row_factory=dict_row) as c:
        plan = rates_repo.plan_id_by_name(c, name)
        assert plan is not None
        for rpm, start, end in (("0.60", datetime(2020, 1, 1, tzinfo=UTC), change),
                                ("0.06", change, None)):  # fmt: skip
            rates_repo.add_rate(c, plan, prefix="51", name="Peru", rate_per_minute=Decimal(rpm),
                                initial_increment=1, increment=1, effective_start=start,
                                effective_end=end)  # fmt: skip
        c.commit()
    return name


def test_an_extension_is_priced_across_the_boundary(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    seed.account(
        "100001", balance="10.00", plan=_plan_changing_at(seed, now + timedelta(seconds=100))
    )
    call = str(uuid_mod.uuid4())
    auth = authorize(client, call, "100001")
    # 300 s: 100 s at 0.60 (1.00) + 200 s at 0.06 (0.20)
    assert auth["reserved"] == "1.2000" and auth["max_duration"] == BLOCK
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        res = reservation(db_url, call)
        control_repo.mark_answered(c, int(res["id"]), "node", now)
        c.commit()
        ext = extend_call(c, call, BLOCK, POLICY, GRACE)
        c.commit()
    # the next block costs 300 s at 0.06 = 0.30 more (at the answer rate alone: 3.00)
    assert ext.extended and ext.amount == Decimal("1.5000") and ext.paid_seconds == 2 * BLOCK
    assert reservation(db_url, call)["max_duration"] == 2 * BLOCK


def test_paid_time_at_answer_follows_the_real_answer(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    seed.account(
        "100002", balance="0.70", plan=_plan_changing_at(seed, now + timedelta(seconds=60))
    )
    call = str(uuid_mod.uuid4())
    auth = authorize(client, call, "100002")
    # as if answered now: 60 s at 0.60 (0.60), then 0.10 buys 100 s at 0.06 -> 160
    assert auth["reserved"] == "0.7000" and auth["max_duration"] == 160
    res = reservation(db_url, call)
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        late = paid_time(c, res, BLOCK, now + timedelta(seconds=30))  # answered 30 s later
        c.rollback()
    # 30 s at 0.60 (0.30), then 0.40 buys 400 s at 0.06: capped at the block
    assert late is not None and late.moved and late.seconds == BLOCK
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        early = paid_time(c, res, BLOCK, now - timedelta(seconds=40))  # rang for nothing
        c.rollback()
    # 100 s at 0.60 is 1.00 > 0.70: 70 s
    assert early is not None and early.seconds == 70


def test_the_worker_moves_the_hangup_of_a_call_whose_rate_changes(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
) -> None:
    now = datetime.now(UTC)
    seed.account(
        "100003", balance="0.70", plan=_plan_changing_at(seed, now + timedelta(seconds=60))
    )
    call = str(uuid_mod.uuid4())
    assert authorize(client, call, "100003")["max_duration"] == 160
    answered = time.time() + 20  # the switch reports an answer 20 s after authorization
    with running(control_settings(db_url, redis_url, [peer])):
        peer.answer(call, answered)
        wait_for(lambda: any(c.startswith("sched_hangup") for c in peer.call_commands(call)),
                 what="the hangup moved at answer")  # fmt: skip
        commands = peer.call_commands(call)
    # from the real answer: 40 s at 0.60 (0.40), 0.30 buys 300 s at 0.06 -> 300 (the block)
    assert reservation(db_url, call)["max_duration"] == BLOCK
    assert commands[0] == f"sched_del {call}"
    hangup = re.fullmatch(rf"sched_hangup \+(\d+) {call} ALLOTTED_TIMEOUT", commands[1])
    assert hangup is not None
    left = answered + BLOCK - time.time()
    assert left - 3 <= int(hangup.group(1)) <= left
