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
