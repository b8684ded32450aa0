"""Calls answered while the worker could not hear CHANNEL_ANSWER are taken over from the list."""

from __future__ import annotations

import time
import uuid as uuid_mod
from decimal import Decimal

import pytest
from control_support import (  # noqa: F401 - fixtures used by name
    BLOCK,
    audit,
    authorize,
    control_app,
    control_settings,
    esl_peer,
    reservation,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration
ANNOUNCE = "/usr/share/freeswitch/sounds/apolo/low_balance.wav"


def _uuid() -> str:
    return str(uuid_mod.uuid4())


def test_calls_answered_during_a_disconnection_are_adopted_then_extended_or_killed(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    seed.account("100002", balance="3.00", rates=[("51", "0.60")])
    funded, broke = _uuid(), _uuid()
    authorize(client, funded, "100001")
    authorize(client, broke, "100002")
    # a long reconcile period: only the listing made on (re)connect can find the calls
    settings = control_settings(db_url, redis_url, [peer], reconcile_seconds=600.0)
    with running(settings) as controller:
        worker = controller.workers[0]
        peer.drop()
        answered = time.time() - 250  # 50 s left: under the 60 s threshold
        peer.answer_silently(funded, answered)
        peer.answer_silently(broke, time.time() - BLOCK - 10)  # its hangup never fired
        wait_for(lambda: worker.connections >= 2 and worker.connected.is_set(), what="reconnect")
        wait_for(lambda: f"sched_del {funded}" in peer.api_commands(), what="extension")
        wait_for(lambda: f"uuid_kill {broke} ALLOTTED_TIMEOUT" in peer.api_commands(), what="kill")
        rows = wait_for(lambda: audit(db_url, broke), what="audit row")
    assert peer.call_commands(funded)[0] == f"uuid_getvar {funded} answered_time"
    res = reservation(db_url, funded)
    assert res["amount"] == Decimal("6.0000") and res["max_duration"] == 2 * BLOCK
    assert res["extensions"] == 1 and res["node"] == f"127.0.0.1:{peer.port}"
    assert res["answered_at"].timestamp() == pytest.approx(answered, abs=1e-5)
    assert peer.tasks[funded][0].startswith("sched_hangup +")
    assert rows[0]["action"] == "overrun_killed" and "past its paid 300s" in rows[0]["reason"]
    assert broke not in peer.channels


def test_worker_started_after_the_answer_adopts_the_call(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    token = seed.token("viewer")
    call = _uuid()
    authorize(client, call, "100001")
    answered = time.time() - 100
    peer.answer_silently(call, answered)
    settings = control_settings(db_url, redis_url, [peer], announce_file=ANNOUNCE)
    with running(settings):
        node = f"127.0.0.1:{peer.port}"

        def shown():  # type: ignore[no-untyped-def]
            resp = client.get(
                f"/v1/calls/active?node={node}", headers={"Authorization": f"Bearer {token}"}
            )
            return resp.get_json()["calls"]

        calls = wait_for(shown, what="adopted call in the live table")
        assert calls[0]["uuid"] == call and calls[0]["account"] == "100001"
        assert float(calls[0]["answered_at"]) == pytest.approx(answered, abs=1e-5)
        assert calls[0]["max_duration"] == str(BLOCK)
        broadcast = wait_for(
            lambda: [c for c in peer.call_commands(call) if c.startswith("sched_broadcast")],
            what="announcement",
        )
    # the announcement 30 s before the paid end: 300 - 100 - 30 s from now
    left = int(broadcast[0].split()[1].lstrip("+"))
    assert 168 <= left <= 170 and broadcast[0].endswith(f"{call} {ANNOUNCE} aleg")
    assert reservation(db_url, call)["node"] == node
    assert f"sched_del {call}" not in peer.api_commands()  # 200 s left: no extension yet


def test_unanswered_reserved_channel_waits_for_its_answer_event(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    call = _uuid()
    authorize(client, call, "100001")
    peer.add_channel(call)  # ringing: answered_time is 0
    with running(control_settings(db_url, redis_url, [peer])) as controller:
        worker = controller.workers[0]
        asked = f"uuid_getvar {call} answered_time"
        wait_for(lambda: peer.api_commands().count(asked) >= 2, what="two listings")
        assert call not in worker.calls
        assert reservation(db_url, call)["answered_at"] is None
        assert peer.call_commands(call) == [asked] * len(peer.call_commands(call))
        answered = time.time() - 5
        peer.answer(call, answered)
        wait_for(lambda: call in worker.calls, what="taken over on CHANNEL_ANSWER")
    res = reservation(db_url, call)
    assert res["answered_at"].timestamp() == pytest.approx(answered, abs=1e-5)
    assert res["status"] == "open"
