"""Reconciliation and reconnection of the control worker (ESL peer, real PostgreSQL/Redis)."""

from __future__ import annotations

import time
import uuid as uuid_mod
from dataclasses import replace

import pytest
import redis as redis_lib
from conftest import FS_AUTH, TEST_PBX
from control_support import (  # noqa: F401 - fixtures used by name
    BLOCK,
    Clock,
    audit,
    authorize,
    control_app,
    control_settings,
    esl_peer,
    reservation,
    running,
    wait_for,
)
from doubles.esl_peer import EslPeer

from sidecar.control.runner import Controller
from sidecar.control.settings import Switch
from sidecar.services import live_calls
from sidecar.simulator.cdr_template import build_cdr

pytestmark = pytest.mark.integration


def _uuid() -> str:
    return str(uuid_mod.uuid4())


def test_reconciliation_releases_the_orphan_only(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="20.00", rates=[("51", "0.60")])
    live, orphan, ended = _uuid(), _uuid(), _uuid()
    for call in (live, orphan, ended):
        authorize(client, call, "100001")
    peer.add_channel(live)  # ringing or talking: on the switch
    settings = control_settings(db_url, redis_url, [peer], reconcile_grace_seconds=1.0)
    with running(settings):
        answered = time.time() - 5
        peer.answer(ended, answered)
        wait_for(lambda: reservation(db_url, orphan)["status"] == "released", what="release")
        # the ended call hangs up now: its CDR is on its way (mod_xml_cdr posting, retrying)
        peer.hangup(ended)
        time.sleep(0.6)
        assert reservation(db_url, ended)["status"] == "open"  # inside the grace: kept
        cdr = build_cdr(ended, "100001", "51987654321", int(answered * 1e6), 5_000_000, TEST_PBX)
        resp = client.post(
            f"/freeswitch/cdr?uuid={ended}", data=cdr, content_type="text/xml", auth=FS_AUTH
        )
        assert resp.status_code == 200, resp.get_data(as_text=True)
        time.sleep(1.2)  # past the grace, several reconciliations later
    assert reservation(db_url, live)["status"] == "open"
    assert reservation(db_url, ended)["status"] == "charged"
    released = reservation(db_url, orphan)
    assert released["close_reason"].startswith("no channel on any switch")
    flags = audit(db_url, orphan)
    assert [f["action"] for f in flags] == ["orphan_released"]
    assert flags[0]["amount"] == released["amount"] and flags[0]["node"] is None
    assert audit(db_url, live) == [] and audit(db_url, ended) == []
    bal = seed.balance("100001")
    assert bal["reserved"] == str(reservation(db_url, live)["amount"])
    assert bal["balance"] == "19.4000"  # only the ended call's minute was charged


def test_no_release_without_every_switch_listing_its_channels(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="20.00", rates=[("51", "0.60")])
    orphan = _uuid()
    authorize(client, orphan, "100001")
    down = EslPeer()
    down.close()  # a configured switch that cannot be reached
    settings = control_settings(db_url, redis_url, [peer], reconcile_grace_seconds=0.3)
    settings = replace(
        settings, switches=(*settings.switches, Switch("127.0.0.1", down.port, "pw"))
    )
    controller = Controller(settings)
    controller.start()
    try:
        assert controller.workers[0].connected.wait(5)
        time.sleep(1.5)
        assert reservation(db_url, orphan)["status"] == "open"
        assert not controller.workers[1].connected.is_set()
    finally:
        controller.stop()


def test_reconnect_keeps_live_calls_and_drops_the_ones_that_ended(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    stays, ends = _uuid(), _uuid()
    for call in (stays, ends):
        authorize(client, call, "100001")
    clock = Clock()
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    node = f"127.0.0.1:{peer.port}"
    with running(control_settings(db_url, redis_url, [peer]), clock) as controller:
        worker = controller.workers[0]
        answered = time.time() - 100  # 200 s left: nothing to do yet
        peer.answer(stays, answered)
        peer.answer(ends, answered)
        wait_for(lambda: len(live_calls.for_node(r, node)) == 2, what="two live calls")
        peer.channels.pop(ends)  # hangs up while the connection is down: no event seen
        peer.drop()
        wait_for(lambda: peer.connections == 2 and worker.connected.is_set(), what="reconnect")
        wait_for(lambda: [c["uuid"] for c in live_calls.for_node(r, node)] == [stays], what="gc")
        assert list(worker.calls) == [stays]
        clock.offset = 150  # time passes: 50 s left, under the threshold
        wait_for(lambda: f"sched_del {stays}" in peer.api_commands(), what="extension")
        wait_for(lambda: live_calls.get(r, stays)["max_duration"] == str(2 * BLOCK), what="live")
    assert peer.commands.count("auth ClueCon") == 2
    assert peer.commands.count("event json CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE HEARTBEAT") == 2
    assert reservation(db_url, stays)["max_duration"] == 2 * BLOCK
    assert reservation(db_url, ends)["status"] == "open"  # its CDR settles it, not the worker


def test_wrong_password_is_retried_with_back_off(db_url, redis_url, peer):  # type: ignore[no-untyped-def]
    settings = control_settings(db_url, redis_url, [peer])
    settings = replace(settings, switches=(Switch("127.0.0.1", peer.port, "WrongPassword"),))
    controller = Controller(settings)
    controller.start()
    try:
        time.sleep(1.2)
    finally:
        controller.stop()
    attempts = peer.commands.count("auth WrongPassword")
    assert 2 <= attempts <= 5  # 0.2, 0.4, 0.4 ... s apart, never a tight loop
    assert not controller.workers[0].connected.is_set()


def test_a_move_cut_short_by_a_drop_is_completed_after_reconnect(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    call = _uuid()
    authorize(client, call, "100001")
    peer.drop_after = "sched_del"  # the link breaks right after the pending hangup is deleted
    with running(control_settings(db_url, redis_url, [peer])) as controller:
        peer.answer(call, time.time() - 250)
        wait_for(lambda: peer.connections == 2, what="reconnect")
        wait_for(lambda: peer.tasks.get(call), what="hangup scheduled again")
        assert controller.workers[0].calls[call].paid_seconds == 2 * BLOCK
    commands = peer.call_commands(call)
    assert commands[0] == f"sched_del {call}"
    assert commands[1] == f"sched_del {call}"  # the move starts over on the new connection
    assert commands[2].startswith("sched_hangup +") and len(commands) == 3
    assert peer.tasks[call] == [commands[2]]
    assert reservation(db_url, call)["extensions"] == 1  # the money was reserved once
