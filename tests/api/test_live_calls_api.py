"""GET /v1/calls/active: the live table in Redis, refilled from PostgreSQL after Redis loses it."""

from __future__ import annotations

import redis as redis_lib
from conftest import FS_AUTH, call_body


def _authorize(client, uuid: str) -> dict:  # type: ignore[no-untyped-def]
    body = call_body(uuid, "100001")
    return client.post("/v1/authorize", json=body, auth=FS_AUTH).get_json()


def test_active_calls_survive_redis_losing_its_data(client, seed, redis_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="100.00")
    viewer = {"Authorization": f"Bearer {seed.token('viewer')}"}
    assert _authorize(client, "call-a")["authorized"] and _authorize(client, "call-b")["authorized"]

    def active() -> dict[str, dict[str, str]]:
        resp = client.get("/v1/calls/active", headers=viewer)
        assert resp.status_code == 200
        return {c["uuid"]: c for c in resp.get_json()["calls"]}

    assert set(active()) == {"call-a", "call-b"}
    redis_lib.Redis.from_url(redis_url).flushdb()  # a Redis restart: nothing kept on disk
    rebuilt = active()
    assert set(rebuilt) == {"call-a", "call-b"}
    assert rebuilt["call-a"]["account"] == "100001"
    assert rebuilt["call-a"]["reserved"] == "36.0000"
    # rebuilt once: a call removed afterwards (its CDR came) is not brought back
    redis_lib.Redis.from_url(redis_url).delete("apolo:call:call-b")
    redis_lib.Redis.from_url(redis_url).srem("apolo:calls", "call-b")
    assert set(active()) == {"call-a"}
