"""Active calls: the page, and its Server-Sent Events stream from Redis pub/sub.

The stream subscribes to :data:`live_calls.CHANGES_CHANNEL` first, then sends a snapshot
of the live table (so no change falls between the two), then one ``call`` event (the
call's whole state, read back from Redis) or ``gone`` event per change, a comment line as
heartbeat, and ends after a bounded lifetime; the browser's EventSource reconnects and
gets a fresh snapshot, which also repairs any message lost in between. A stream whose Redis
connection breaks (a restart, a Sentinel failover) ends at once instead of reconnecting
quietly, for the same reason: the browser comes back to a snapshot of the current master.
Every event carries the server's clock so the page can tick durations without trusting the
laptop's.

A stream holds one worker thread for its lifetime, and those threads also serve FreeSWITCH's
authorizations, so each worker process serves at most ``max_streams`` at once; past that
the stream answers 503 and the page tries again a little later.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from flask import Response, current_app, render_template
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.retry import Retry

from sidecar.api._request import redis_client, settings
from sidecar.config import Settings
from sidecar.redis_store import new_client
from sidecar.services import live_calls
from sidecar.web.blueprint import bp
from sidecar.web.guard import READERS, page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    # APOLO_DASHBOARD_STREAM_SECONDS: an SSE connection ends after this long (it holds a
    # worker thread); the browser reconnects at once
    lifetime_seconds: float = 300.0
    # APOLO_DASHBOARD_HEARTBEAT_SECONDS: a comment line this often keeps proxies from
    # closing an idle stream and finds disconnected browsers
    heartbeat_seconds: float = 15.0
    # APOLO_DASHBOARD_MAX_STREAMS: open streams per worker process (keep it well under
    # APOLO_THREADS)
    max_streams: int = 2


def load_stream_settings(environ: Mapping[str, str]) -> StreamSettings:
    defaults = StreamSettings()
    values = []
    for variable, default in (
        ("APOLO_DASHBOARD_STREAM_SECONDS", defaults.lifetime_seconds),
        ("APOLO_DASHBOARD_HEARTBEAT_SECONDS", defaults.heartbeat_seconds),
    ):
        raw = environ.get(variable) or ""
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ValueError(f"{variable}: {raw!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"{variable} must be positive")
        values.append(value)
    raw = environ.get("APOLO_DASHBOARD_MAX_STREAMS") or ""
    if raw and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
        raise ValueError(f"APOLO_DASHBOARD_MAX_STREAMS: {raw!r} is not a positive integer")
    return StreamSettings(values[0], values[1], int(raw) if raw else defaults.max_streams)


def stream_settings() -> StreamSettings:
    found: StreamSettings | None = current_app.extensions.get("apolo_web_stream")
    if found is None:
        found = load_stream_settings(os.environ)
        current_app.extensions["apolo_web_stream"] = found
    return found


_open_lock = threading.Lock()
_open_streams = [0]


def _take_slot(limit: int) -> bool:
    with _open_lock:
        if _open_streams[0] >= limit:
            return False
        _open_streams[0] += 1
        return True


def _free_slot() -> None:
    with _open_lock:
        _open_streams[0] -= 1


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@bp.get("/calls")
@page(*READERS)
def calls_page() -> Any:
    return render_template("calls.html")


@bp.get("/calls/stream")
@page(*READERS)
def calls_stream() -> Any:
    cfg = stream_settings()
    config = settings()
    try:
        redis_client().ping()
    except Exception:
        return _unavailable("the live call state (Redis) is unavailable")
    if not _take_slot(cfg.max_streams):
        return _unavailable("too many live views are open on this worker")
    response = Response(
        _events(config, cfg),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    # the server closes the response when the stream ends or the browser goes away, even
    # when the body was never started (a generator's own ``finally`` would not run then)
    response.call_on_close(_free_slot)
    return response


def _unavailable(reason: str) -> Response:
    return Response(sse("unavailable", {"reason": reason}), status=503,
                    mimetype="text/event-stream", headers={"Retry-After": "5"})  # fmt: skip


def _events(config: Settings, cfg: StreamSettings) -> Iterator[str]:
    client = new_client(
        config, socket_connect_timeout=1.0, socket_timeout=cfg.heartbeat_seconds + 5,
        retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        yield from _stream(client, pubsub, cfg)
    except redis.RedisError as exc:  # the browser reconnects and starts from a snapshot
        log.warning("live calls stream ended: Redis %s", exc)
    finally:
        pubsub.close()
        client.close()


def _stream(client: redis.Redis, pubsub: PubSub, cfg: StreamSettings) -> Iterator[str]:
    pubsub.subscribe(live_calls.CHANGES_CHANNEL)
    yield "retry: 1000\n\n"
    calls = live_calls.active(client)
    yield sse("snapshot", {"now": time.time(), "calls": calls})
    deadline = time.monotonic() + cfg.lifetime_seconds
    beat = time.monotonic() + cfg.heartbeat_seconds
    while (left := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=min(1.0, left))
        if message is not None and message.get("type") == "message":
            change = json.loads(message["data"])
            uuid = str(change.get("uuid", ""))
            state = live_calls.get(client, uuid) if change.get("op") == "set" else None
            if state is not None:
                yield sse("call", {"now": time.time(), "call": state})
            else:
                yield sse("gone", {"now": time.time(), "uuid": uuid})
        if time.monotonic() >= beat:
            yield ": heartbeat\n\n"
            beat = time.monotonic() + cfg.heartbeat_seconds
    yield sse("bye", {"now": time.time()})
