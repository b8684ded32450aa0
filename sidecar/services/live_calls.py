"""Live call state in Redis: uuid -> account, reservation, limit, start.

PostgreSQL stays the record; these keys only feed the dashboard and the mid-call
worker. They are written after the commit and expire on their own.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

CALLS_SET = "apolo:calls"


def call_key(uuid: str) -> str:
    return f"apolo:call:{uuid}"


def record_authorized(client: redis.Redis, state: dict[str, Any], ttl_seconds: int) -> None:
    uuid = state["uuid"]
    payload: dict[Any, Any] = {
        k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in state.items()
    }
    payload["authorized_at"] = f"{time.time():.3f}"
    pipe = client.pipeline(transaction=True)
    pipe.hset(call_key(uuid), mapping=payload)
    pipe.expire(call_key(uuid), ttl_seconds)
    pipe.sadd(CALLS_SET, uuid)
    pipe.execute()


def remove(client: redis.Redis, uuid: str) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.delete(call_key(uuid))
    pipe.srem(CALLS_SET, uuid)
    pipe.execute()


def active(client: redis.Redis) -> list[dict[str, str]]:
    calls = []
    for uuid in sorted(str(u) for u in client.smembers(CALLS_SET)):
        state = client.hgetall(call_key(uuid))
        if state:
            calls.append(state)
        else:  # expired key: drop it from the set too
            client.srem(CALLS_SET, uuid)
    return calls  # type: ignore[return-value]
