"""Regressions found by the control-worker fault scenarios (in-process worker, private servers).

- a PostgreSQL error ended the worker's thread for good (``apolo control`` stayed up, idle);
- a worker restarted after dying between ``sched_del`` and ``sched_hangup`` never scheduled
  the call's hangup again, so the switch held none (from the live table or, with Redis
  lost, from the channel list);
- after Redis lost its data the worker never put its calls back in its node's live table.
"""

from __future__ import annotations

import time
import uuid as uuid_mod
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis as redis_lib
from conftest import Seed, make_app
from doubles.esl_peer import EslPeer
from integration.control_support import (
    BLOCK,
    authorize,
    control_settings,
    reservation,
    running,
    wait_for,
)

from reliability.conftest import PrivateServers
from sidecar.control.runner import Controller
from sidecar.services import live_calls


@pytest.fixture
def client(servers: PrivateServers, rel_seed: Seed) -> Iterator[Any]:
    app = make_app(servers.db_url, servers.redis_url, reservation_seconds=BLOCK)
    rel_seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    yield app.test_client()
    app.extensions["apolo_rates"].stop()


@pytest.fixture
def peer() -> Iterator[EslPeer]:
    p = EslPeer()
    yield p
    p.close()


def _call(client: Any) -> str:
    call = str(uuid_mod.uuid4())
    authorize(client, call, "100001")
    return call


def test_worker_waits_out_a_postgresql_outage_then_extends_once(
    client: Any, servers: PrivateServers, peer: EslPeer
) -> None:
    call = _call(client)
    settings = control_settings(servers.db_url, servers.redis_url, [peer], reconcile_seconds=600.0)
    with running(settings) as controller:
        worker = controller.workers[0]
        servers.stop_postgres()
        answered = time.time() - 250  # 50 s left: it needs its extension
        peer.answer(call, answered, hangup_in=BLOCK - 1)
        wait_for(lambda: worker.connections >= 2, timeout=10, what="a fresh start")
        servers.start()
        wait_for(lambda: f"sched_del {call}" in peer.api_commands(), timeout=20, what="extension")
        due = wait_for(lambda: peer.hangup_due.get(call), what="the moved hangup")
        assert worker.connected.is_set()
    res = reservation(servers.db_url, call)
    assert res["extensions"] == 1 and res["amount"] == Decimal("6.0000")
    assert abs(due[0] - (answered + 2 * BLOCK - 1)) < 2


@pytest.mark.parametrize("redis_lost", [False, True], ids=["live-table", "channel-list"])
def test_restarted_worker_completes_a_move_its_predecessor_died_in(
    client: Any, servers: PrivateServers, peer: EslPeer, redis_lost: bool
) -> None:
    call = _call(client)
    settings = control_settings(servers.db_url, servers.redis_url, [peer], reconcile_seconds=600.0)
    answered = time.time() - 250
    # the worker deletes the pending hangup, then never hears back: it dies there
    peer.stall = ("sched_del", 3.0)
    first = Controller(settings)
    first.start()
    peer.answer(call, answered, hangup_in=BLOCK - 1)
    wait_for(lambda: f"sched_del {call}" in peer.api_commands(), what="the move")
    first.stop()  # it gives up waiting for the reply; the new hangup is never sent
    assert call not in peer.hangup_due and call in peer.channels
    if redis_lost:
        servers.flushall()
    with running(settings):  # the restarted process
        due = wait_for(lambda: peer.hangup_due.get(call), what="a hangup scheduled again")
    assert abs(due[0] - (answered + 2 * BLOCK - 1)) < 2
    assert reservation(servers.db_url, call)["extensions"] == 1  # the money was reserved once


def test_worker_puts_its_calls_back_in_a_flushed_live_table(
    client: Any, servers: PrivateServers, peer: EslPeer
) -> None:
    call = _call(client)
    r = redis_lib.Redis.from_url(servers.redis_url, decode_responses=True)
    node = f"127.0.0.1:{peer.port}"
    answered = time.time() - 10
    with running(control_settings(servers.db_url, servers.redis_url, [peer])):
        peer.answer(call, answered, hangup_in=BLOCK - 1)
        wait_for(lambda: live_calls.for_node(r, node), what="the live call")
        servers.flushall()
        state = wait_for(lambda: live_calls.for_node(r, node), what="the call put back")
    assert state[0]["uuid"] == call and state[0]["account"] == "100001"
    assert float(state[0]["answered_at"]) == pytest.approx(answered, abs=1e-5)
    assert state[0]["max_duration"] == str(BLOCK)
