"""The live calls stream: snapshot, then one event per change published by live_calls."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis as redis_lib
from conftest import FS_AUTH, TEST_PBX, call_body
from test_web_support import clear_users, login, make_user, plain_http, register_dashboard

from sidecar.services import live_calls
from sidecar.simulator.cdr_template import build_cdr
from sidecar.web.live import StreamSettings, load_stream_settings

LIFETIME = 4.0


@pytest.fixture
def viewer(app, seed, db_url):  # type: ignore[no-untyped-def]
    register_dashboard(app)
    plain_http(app)
    app.extensions["apolo_web_stream"] = StreamSettings(LIFETIME, 0.3)
    clear_users(db_url)
    seed.account("100001", balance="10")
    make_user(db_url, "vera", "viewer")
    client = app.test_client()
    assert login(client, "vera").status_code == 303
    return client


def events(resp) -> Iterator[tuple[str, dict[str, object] | None]]:  # type: ignore[no-untyped-def]
    """(event name, data) per SSE message; ("heartbeat", None) for comments."""
    buffer = ""
    for chunk in resp.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith(":"):
                yield "heartbeat", None
                continue
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            if "event" in fields:
                yield fields["event"], json.loads(fields["data"])


def next_event(stream: Iterator[tuple[str, dict[str, object] | None]]) -> tuple[str, dict]:  # type: ignore[type-arg]
    for name, data in stream:
        if name != "heartbeat":
            assert data is not None
            return name, data
    raise AssertionError("the stream ended")


def test_stream_sends_snapshot_changes_heartbeats_and_ends(viewer, redis_url) -> None:  # type: ignore[no-untyped-def]
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    live_calls.record_authorized(r, {"uuid": "call-a", "account": "100001", "max_duration": 60}, 30)
    started = time.monotonic()
    resp = viewer.get("/dashboard/calls/stream", buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    stream = events(resp)
    name, data = next_event(stream)
    assert name == "snapshot" and [c["uuid"] for c in data["calls"]] == ["call-a"]
    assert abs(float(data["now"]) - time.time()) < 5
    live_calls.record_authorized(r, {"uuid": "call-b", "account": "100001", "max_duration": 90}, 30)
    name, data = next_event(stream)
    assert name == "call" and data["call"]["uuid"] == "call-b"
    assert data["call"]["max_duration"] == "90" and "authorized_at" in data["call"]
    live_calls.update(r, "call-b", {"max_duration": 390}, 30)
    name, data = next_event(stream)
    assert (name, data["call"]["max_duration"]) == ("call", "390")
    live_calls.remove(r, "call-a")
    assert next_event(stream) == (
        "gone",
        {"now": pytest.approx(time.time(), abs=5), "uuid": "call-a"},
    )
    rest = list(stream)
    assert ("heartbeat", None) in rest and rest[-1][0] == "bye"
    assert LIFETIME <= time.monotonic() - started < LIFETIME + 3
    resp.close()


def test_authorization_and_cdr_reach_the_stream(viewer, app, seed) -> None:  # type: ignore[no-untyped-def]
    resp = viewer.get("/dashboard/calls/stream", buffered=False)
    stream = events(resp)
    assert next_event(stream) == (
        "snapshot",
        {"now": pytest.approx(time.time(), abs=5), "calls": []},
    )
    call = str(uuid.uuid4())
    switch = app.test_client()
    body = call_body(call, "100001")
    assert switch.post("/v1/authorize", json=body, auth=FS_AUTH).get_json()["authorized"]
    name, data = next_event(stream)
    assert name == "call" and data["call"]["uuid"] == call
    assert data["call"]["account"] == "100001" and int(data["call"]["max_duration"]) > 0
    cdr = build_cdr(
        call, "100001", "51987654321", int((time.time() - 5) * 1e6), 3_000_000, TEST_PBX
    )
    posted = switch.post(
        f"/freeswitch/cdr?uuid={call}", data=cdr, content_type="text/xml", auth=FS_AUTH
    )
    assert posted.status_code == 200
    name, data = next_event(stream)
    assert (name, data["uuid"]) == ("gone", call)
    resp.close()


def test_streams_per_worker_are_limited(viewer, app) -> None:  # type: ignore[no-untyped-def]
    app.extensions["apolo_web_stream"] = StreamSettings(LIFETIME, 0.3, max_streams=2)
    first = viewer.get("/dashboard/calls/stream", buffered=False)
    second = viewer.get("/dashboard/calls/stream", buffered=False)
    assert first.status_code == second.status_code == 200
    refused = viewer.get("/dashboard/calls/stream", buffered=False)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert "too many live views" in refused.get_data(as_text=True)
    # a stream closed before it sent anything gives its slot back too
    second.close()
    third = viewer.get("/dashboard/calls/stream", buffered=False)
    assert third.status_code == 200
    assert next_event(events(third))[0] == "snapshot"
    first.close()
    third.close()
    refused.close()


def test_stream_settings_from_the_environment() -> None:
    assert load_stream_settings({}) == StreamSettings(300.0, 15.0, 2)
    cfg = load_stream_settings({"APOLO_DASHBOARD_STREAM_SECONDS": "60",
                                "APOLO_DASHBOARD_HEARTBEAT_SECONDS": "5"})  # fmt: skip
    assert cfg == StreamSettings(60.0, 5.0, 2)
    assert load_stream_settings({"APOLO_DASHBOARD_MAX_STREAMS": "6"}).max_streams == 6
    with pytest.raises(ValueError, match="APOLO_DASHBOARD_MAX_STREAMS"):
        load_stream_settings({"APOLO_DASHBOARD_MAX_STREAMS": "0"})
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ValueError, match="APOLO_DASHBOARD_STREAM_SECONDS"):
            load_stream_settings({"APOLO_DASHBOARD_STREAM_SECONDS": bad})
