"""Live call state in Redis: uuid -> node, account, reservation, answer time, paid time.

PostgreSQL stays the record; these keys feed the dashboard (``GET /v1/calls/active``) and
the mid-call control worker. The sidecar writes a call at authorization (after the commit);
the control worker adds the node and answer time when the switch reports the answer, and
moves ``max_duration`` when it extends the reservation. Keys expire on their own.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

CALLS_SET = "apolo:calls"


def call_key(uuid: str) -> str:
    return f"apolo:call:{uuid}"


def node_key(node: str) -> str:
    return f"apolo:node:{node}:calls"


def _flat(state: dict[str, Any]) -> dict[Any, Any]:
    return {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in state.items()}


def record_authorized(client: redis.Redis, state: dict[str, Any], ttl_seconds: int) -> None:
    uuid = state["uuid"]
    payload = _flat(state)
    payload["authorized_at"] = f"{time.time():.3f}"
    pipe = client.pipeline(transaction=True)
    pipe.hset(call_key(uuid), mapping=payload)
    pipe.expire(call_key(uuid), ttl_seconds)
    pipe.sadd(CALLS_SET, uuid)
    pipe.execute()


def record_answered(
    client: redis.Redis, node: str, state: dict[str, Any], ttl_seconds: int
) -> None:
    """The switch answered the call: it now belongs to ``node``'s live table."""
    uuid = state["uuid"]
    pipe = client.pipeline(transaction=True)
    pipe.hset(call_key(uuid), mapping=_flat({**state, "node": node}))
    pipe.expire(call_key(uuid), ttl_seconds)
    pipe.sadd(CALLS_SET, uuid)
    pipe.sadd(node_key(node), uuid)
    pipe.execute()


def update(client: redis.Redis, uuid: str, fields: dict[str, Any], ttl_seconds: int) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.hset(call_key(uuid), mapping=_flat(fields))
    pipe.expire(call_key(uuid), ttl_seconds)
    pipe.execute()


def remove(client: redis.Redis, uuid: str, node: str | None = None) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.delete(call_key(uuid))
    pipe.srem(CALLS_SET, uuid)
    if node:
        pipe.srem(node_key(node), uuid)
    pipe.execute()


def get(client: redis.Redis, uuid: str) -> dict[str, str] | None:
    state = client.hgetall(call_key(uuid))
    return state or None  # type: ignore[return-value]


def for_node(client: redis.Redis, node: str) -> list[dict[str, str]]:
    """The answered calls of one switch (expired keys are dropped from its set)."""
    calls = []
    for uuid in sorted(str(u) for u in client.smembers(node_key(node))):
        state = client.hgetall(call_key(uuid))
        if state:
            calls.append(state)
        else:
            client.srem(node_key(node), uuid)
    return calls  # type: ignore[return-value]


def active(client: redis.Redis, node: str | None = None) -> list[dict[str, str]]:
    if node:
        return for_node(client, node)
    calls = []
    for uuid in sorted(str(u) for u in client.smembers(CALLS_SET)):
        state = client.hgetall(call_key(uuid))
        if state:
            calls.append(state)
        else:  # expired key: drop it from the set too
            client.srem(CALLS_SET, uuid)
    return calls  # type: ignore[return-value]
