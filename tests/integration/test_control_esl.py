"""The event-socket client against the protocol peer on loopback."""

from __future__ import annotations

import json
import time

import pytest
from control_support import esl_peer  # noqa: F401 - fixtures used by name
from doubles.esl_peer import CONTROL_DIR, EslPeer

from sidecar.control.esl import EslAuthError, EslClosed, EslConnection

pytestmark = pytest.mark.integration
UUID = "e86769d7-3654-4359-a798-935a3e000190"


def test_uuid_getvar_replies_as_captured(peer: EslPeer) -> None:
    conn = EslConnection.open("127.0.0.1", peer.port, "ClueCon", 2.0)
    try:
        assert conn.api(f"uuid_getvar {UUID} answered_time") == "-ERR No such channel!\n"
        peer.add_channel(UUID)
        assert conn.api(f"uuid_getvar {UUID} answered_time") == "0"
        assert conn.api(f"uuid_getvar {UUID} answer_epoch") == "_undef_"
        peer.answer_silently(UUID, 1795345334.167795)
        assert conn.api(f"uuid_getvar {UUID} answered_time") == "1795345334167795"
    finally:
        conn.close()


def test_wrong_password_is_refused(peer: EslPeer) -> None:
    with pytest.raises(EslAuthError):
        EslConnection.open("127.0.0.1", peer.port, "WrongPassword", 2.0)
    assert peer.commands == ["auth WrongPassword"]


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_events_and_api_replies_interleave(peer: EslPeer, fmt: str) -> None:
    conn = EslConnection.open("127.0.0.1", peer.port, "ClueCon", 2.0)
    try:
        conn.subscribe(fmt, ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"))
        peer.answer(UUID, 1795345334.167795)
        time.sleep(0.1)  # the event is on the wire before the reply
        assert conn.api(f"sched_hangup +4 {UUID} ALLOTTED_TIMEOUT") == "+OK\n"
        assert conn.api(f"sched_del {UUID}") == "+OK Deleted: 1\n"
        assert conn.api(f"sched_del {UUID}") == "+OK Deleted: 0\n"
        event = conn.next_event(1.0)
        assert event is not None and event.name == "CHANNEL_ANSWER"
        assert event.get("Unique-ID") == UUID
        assert event.get("Caller-Channel-Answered-Time") == "1795345334167795"
        assert event.get("Event-Date-Local") == "2026-11-22 11:02:14"  # decoded in plain too
        assert conn.next_event(0.05) is None
    finally:
        conn.close()
    assert peer.commands[:2] == [
        "auth ClueCon",
        f"event {fmt} CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE",
    ]


def test_replayed_capture_decodes_every_event(peer: EslPeer) -> None:
    conn = EslConnection.open("127.0.0.1", peer.port, "ClueCon", 2.0)
    try:
        conn.subscribe(
            "json", ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE", "HEARTBEAT", "CHANNEL_PARK")
        )
        sent = peer.replay(CONTROL_DIR / "07_live_calls_events_json.from_fs.raw")
        names = []
        while (event := conn.next_event(0.5)) is not None:
            names.append(event.name)
    finally:
        conn.close()
    captures = json.loads((CONTROL_DIR / "scenarios.json").read_text())["captures"]
    info = next(c for c in captures if c["id"] == "07_live_calls_events_json")
    assert len(names) == sent == info["frames_from_fs_by_content_type"]["text/event-json"]
    assert names.count("CHANNEL_ANSWER") >= 1 and names.count("CHANNEL_HANGUP_COMPLETE") >= 1


def test_closed_connection_is_reported(peer: EslPeer) -> None:
    conn = EslConnection.open("127.0.0.1", peer.port, "ClueCon", 2.0)
    conn.subscribe("json", ("HEARTBEAT",))
    peer.drop()
    with pytest.raises(EslClosed):
        conn.next_event(1.0)
    with pytest.raises(EslClosed):
        conn.api("status")


def test_exit_gets_goodbye_notice(peer: EslPeer) -> None:
    conn = EslConnection.open("127.0.0.1", peer.port, "ClueCon", 2.0)
    assert conn.exit() == "+OK bye"
    with pytest.raises(EslClosed, match="goodbye"):
        conn.next_event(1.0)
