"""The live call table's bulk removal (CDRs settled together) on the real Redis."""

from __future__ import annotations

import json
import time

import redis as redis_lib

from sidecar.services import live_calls


def test_remove_many_drops_each_call_and_announces_it(redis_url: str) -> None:
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    for n in range(5):
        live_calls.record_authorized(r, {"uuid": f"call-{n}", "account": "100001"}, 60)
    pubsub = r.pubsub()
    pubsub.subscribe(live_calls.CHANGES_CHANNEL)
    pubsub.get_message(timeout=1)  # the subscription confirmation

    live_calls.remove_many(r, ["call-1", "call-3", "call-4"], chunk=2)

    assert sorted(r.smembers(live_calls.CALLS_SET)) == ["call-0", "call-2"]
    assert [r.exists(live_calls.call_key(f"call-{n}")) for n in range(5)] == [1, 0, 1, 0, 0]
    seen = []
    deadline = time.monotonic() + 2
    while len(seen) < 3 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            seen.append(json.loads(message["data"]))
    assert seen == [{"op": "del", "uuid": u} for u in ("call-1", "call-3", "call-4")]
    pubsub.close()


def test_a_call_is_stored_with_every_field_as_the_text_it_was(redis_url: str) -> None:
    """The fields travel to the script as one JSON array: text that JSON escapes, money
    whose trailing zeros a number would lose and empty values come back as they were."""
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    state = {
        "uuid": "call-text",
        "account": "100001",
        "caller": 'Jos\u00e9 "\\x" \u4e2d\t/',
        "reserved": "1.2000",
        "rate_per_minute": "0.0100",
        "max_duration": 3600,
        "reservation_id": "",
    }
    pubsub = r.pubsub()
    pubsub.subscribe(live_calls.CHANGES_CHANNEL)
    pubsub.get_message(timeout=1)

    live_calls.record_authorized(r, state, 90)

    stored = r.hgetall(live_calls.call_key("call-text"))
    assert float(stored.pop("authorized_at")) > time.time() - 60
    assert stored == {**state, "max_duration": "3600"}
    assert 0 < r.ttl(live_calls.call_key("call-text")) <= 90
    assert r.smembers(live_calls.CALLS_SET) == {"call-text"}
    message = pubsub.get_message(timeout=2)
    assert message is not None and json.loads(message["data"]) == {"op": "set", "uuid": "call-text"}
    pubsub.close()

    live_calls.record_answered(r, "fs1", {"uuid": "call-text", "answered_at": "12.5"}, 90)
    assert r.hget(live_calls.call_key("call-text"), "answered_at") == "12.5"
    assert r.hget(live_calls.call_key("call-text"), "caller") == state["caller"]
    assert r.smembers(live_calls.node_key("fs1")) == {"call-text"}
