"""The control worker against the ESL peer and the real database: extend, refuse, share, kill."""

from __future__ import annotations

import re
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
    money,
    reservation,
    running,
    wait_for,
)
from doubles.esl_peer import EslPeer

pytestmark = pytest.mark.integration
ANNOUNCE = "/usr/share/freeswitch/sounds/apolo/low_balance.wav"


def _uuid() -> str:
    return str(uuid_mod.uuid4())


def test_funded_call_is_extended_and_its_hangup_moved(app, client, seed, db_url, redis_url, peer):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    call = _uuid()
    auth = authorize(client, call, "100001")
    assert auth["max_duration"] == BLOCK and auth["reserved"] == "3.0000"
    settings = control_settings(db_url, redis_url, [peer], announce_file=ANNOUNCE)
    with running(settings):
        answered = time.time() - 250  # 50 s left: under the 60 s threshold
        peer.answer(call, answered)
        wait_for(lambda: f"sched_del {call}" in peer.api_commands(), what="sched_del")
        wait_for(lambda: len(peer.call_commands(call)) >= 4, what="re-schedule")
        api = peer.call_commands(call)
    res = reservation(db_url, call)
    assert res["amount"] == Decimal("6.0000") and res["max_duration"] == 2 * BLOCK
    assert res["extensions"] == 1 and res["node"] == f"127.0.0.1:{peer.port}"
    assert seed.balance("100001")["reserved"] == "6.0000"
    assert seed.balance("100001")["balance"] == "10.0000"  # nothing spent until the CDR

    # at answer: the announcement 30 s before the paid end; then the move, in this order
    assert re.fullmatch(rf"sched_broadcast \+(19|20) {call} {re.escape(ANNOUNCE)} aleg", api[0])
    assert api[1] == f"sched_del {call}"
    hangup = re.fullmatch(rf"sched_hangup \+(\d+) {call} ALLOTTED_TIMEOUT", api[2])
    assert hangup is not None
    left = answered + 2 * BLOCK - time.time()
    assert left - 3 <= int(hangup.group(1)) <= left  # +remaining-1, never later than paid
    assert re.fullmatch(rf"sched_broadcast \+\d+ {call} {re.escape(ANNOUNCE)} aleg", api[3])
    # the scheduler now holds exactly the new hangup and the re-scheduled announcement
    assert peer.tasks[call] == api[2:4]


def test_extensions_bill_the_reservation_not_the_channel_variables(
    app, client, seed, db_url, redis_url, peer
):  # type: ignore[no-untyped-def]
    """apolo control picks no account: whatever the channel says, the account that was
    authorized is the one extended."""
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    seed.account("100002", balance="10.00", rates=[("51", "0.60")])
    call = _uuid()
    authorize(client, call, "100001")
    forged = {"variable_accountcode": "100002", "variable_sip_h_X-Billing-Account": "100002",
              "Caller-Caller-ID-Number": "100002", "variable_sip_authorized": "true"}  # fmt: skip
    with running(control_settings(db_url, redis_url, [peer])):
        peer.answer(call, time.time() - 250, headers=forged)
        wait_for(lambda: f"sched_del {call}" in peer.api_commands(), what="sched_del")
    assert reservation(db_url, call)["extensions"] == 1
    assert seed.balance("100001")["reserved"] == "6.0000"
    assert seed.balance("100002")["reserved"] == "0.0000"


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_active_calls_api_shows_the_answered_call(app, client, seed, db_url, redis_url, peer, fmt):  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    token = seed.token("viewer")
    call = _uuid()
    authorize(client, call, "100001")
    with running(control_settings(db_url, redis_url, [peer], event_format=fmt)):
        peer.answer(call, time.time() - 10)
        node = f"127.0.0.1:{peer.port}"

        def shown():  # type: ignore[no-untyped-def]
            resp = client.get(
                f"/v1/calls/active?node={node}", headers={"Authorization": f"Bearer {token}"}
            )
            return resp.get_json()["calls"]

        calls = wait_for(shown, what="live call on the node")
        assert calls[0]["uuid"] == call and calls[0]["node"] == node
        assert calls[0]["max_duration"] == str(BLOCK) and calls[0]["account"] == "100001"
        assert float(calls[0]["answered_at"]) == pytest.approx(time.time() - 10, abs=2)
        peer.hangup(call)
        wait_for(lambda: not shown(), what="call gone after hangup")
    assert client.get("/v1/calls/active").status_code == 401


def test_unfunded_call_keeps_its_hangup_and_hears_the_announcement(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="3.00", rates=[("51", "0.60")])
    call = _uuid()
    authorize(client, call, "100001")
    with running(control_settings(db_url, redis_url, [peer], announce_file=ANNOUNCE)):
        peer.answer(call, time.time() - 250)
        wait_for(lambda: peer.call_commands(call), what="announcement")
        time.sleep(0.6)  # several ticks and retries
        api = peer.call_commands(call)
    assert [c.split()[0] for c in api] == ["sched_broadcast"]
    assert not any(c.startswith(("sched_del", "sched_hangup", "uuid_kill")) for c in api)
    res = reservation(db_url, call)
    assert res["amount"] == Decimal("3.0000") and res["max_duration"] == BLOCK
    assert res["extensions"] == 0
    assert seed.balance("100001")["available"] == "0.0000"


def test_two_switches_share_one_balance_without_overspend(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url
):
    seed.account("100001", balance="7.00", rates=[("51", "0.60")], max_calls=5)
    peers = [EslPeer(), EslPeer()]
    calls = [_uuid(), _uuid()]
    try:
        for call in calls:
            authorize(client, call, "100001")
        assert seed.balance("100001")["available"] == "1.0000"
        with running(control_settings(db_url, redis_url, peers)):
            answered = time.time() - 250
            for peer, call in zip(peers, calls, strict=True):
                peer.answer(call, answered)
            wait_for(
                lambda: sum(
                    f"sched_del {c}" in p.api_commands() for p, c in zip(peers, calls, strict=True)
                ),
                what="one extension",
            )
            time.sleep(0.5)
        amounts = [money(reservation(db_url, c)["amount"]) for c in calls]
        durations = sorted(reservation(db_url, c)["max_duration"] for c in calls)
        moved = [
            p for p, c in zip(peers, calls, strict=True) if f"sched_del {c}" in p.api_commands()
        ]
    finally:
        for p in peers:
            p.close()
    # 1.00 was left: one call got it (6 more minutes at 0.60 pay 100 s -> one more increment)
    assert sorted(amounts) == [Decimal("3.0000"), Decimal("4.0000")]
    assert durations == [BLOCK, 360]
    assert len(moved) == 1
    bal = seed.balance("100001")
    assert bal["reserved"] == "7.0000" and bal["available"] == "0.0000"


def test_call_past_its_paid_time_is_killed_and_recorded(  # type: ignore[no-untyped-def]
    app, client, seed, db_url, redis_url, peer
):
    seed.account("100001", balance="3.00", rates=[("51", "0.60")])
    call = _uuid()
    authorize(client, call, "100001")
    with running(control_settings(db_url, redis_url, [peer])):
        peer.answer(call, time.time() - BLOCK - 10)  # its scheduled hangup never fired
        wait_for(lambda: f"uuid_kill {call} ALLOTTED_TIMEOUT" in peer.api_commands(), what="kill")
        rows = wait_for(lambda: audit(db_url, call), what="audit row")
    assert call not in peer.channels
    assert rows[0]["action"] == "overrun_killed"
    assert "past its paid 300s" in rows[0]["reason"] and "+OK" in rows[0]["reason"]
    assert rows[0]["reservation_id"] == reservation(db_url, call)["id"]
