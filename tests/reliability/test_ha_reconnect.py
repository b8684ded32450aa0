"""Reconnect paths of the HA layout, on real servers, quick enough for ``make test``.

PostgreSQL: a primary with a streaming standby; Apolo's clients get a multi-host URL that
names the read-only standby first. They must land on the primary (``target_session_attrs=
read-write``), reports on the standby, and after a failover (primary killed, standby
promoted) find the new primary by themselves: the request pool, the rate/account watcher
(LISTEN/NOTIFY), ``apolo control`` and ``apolo alerts deliver``.

Redis: a master, a replica and a sentinel (plain redis-server and redis-sentinel). The
client made by ``sidecar.redis_store`` follows Sentinel's switch to the replica; the
dashboard's live stream ends instead of hanging on the dead master, and the next one reads
the new master.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from conftest import FS_AUTH, ROOT, Seed, call_body, free_port, make_app
from doubles.esl_peer import EslPeer

from reliability.ha_servers import PG_BIN, PgPair, engines, engines_missing
from reliability.tally import TALLY
from sidecar.config import load_settings
from sidecar.db import discard_request, get_conn, get_reports_conn
from sidecar.migrations import upgrade
from sidecar.redis_store import redis_for
from sidecar.services import live_calls
from sidecar.services.alerts import WebhookSettings, delivery_loop
from sidecar.simulator.cdr_template import build_cdr
from sidecar.web.live import StreamSettings, _events

CALLER, CALLEE = "100001", "51987654321"


def wait_until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.fixture
def pair() -> Iterator[PgPair]:
    if not PG_BIN.exists():
        pytest.skip("PostgreSQL server binaries are not installed")
    servers = PgPair(ROOT / ".data" / "reliability" / f"pair-{os.getpid()}")
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture
def webhooks() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _where(url: str) -> tuple[int, bool]:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def _authorize(client: Any, call_uuid: str | None = None) -> Any:
    body = call_body(call_uuid or str(uuidlib.uuid4()), CALLER, CALLEE)
    return client.post("/v1/authorize", json=body, auth=FS_AUTH)


def test_a_failover_is_followed_by_the_pool_the_watcher_control_and_webhooks(
    pair: PgPair, redis_url: str, webhooks: tuple[str, list[bytes]]
) -> None:
    TALLY.scenarios.append("multi-host-failover")
    # the standby first: read-write targeting must skip it; reports prefer it
    url = pair.url(pair.standby_port, pair.primary_port)
    reports = pair.url(pair.primary_port, pair.standby_port, attrs="prefer-standby")
    with psycopg.connect(pair.url(pair.primary_port)) as c:
        upgrade(c)
    Seed(url).account(CALLER, balance="50.00", rates=[("51", "0.60")])
    assert _where(url) == (pair.primary_port, False)
    wait_until("the standby has the account", lambda: _replicated(pair))
    assert _where(reports) == (pair.standby_port, True)

    app = make_app(url, redis_url, reports_database_url=reports, reservation_seconds=300,
                   db_timeout=1.0, rate_poll_seconds=0.2)  # fmt: skip
    client = app.test_client()
    with app.test_request_context():
        assert get_conn().execute("SELECT pg_is_in_recovery()").fetchone() == {
            "pg_is_in_recovery": False
        }
        assert get_reports_conn().execute("SELECT pg_is_in_recovery()").fetchone() == {
            "pg_is_in_recovery": True
        }
        discard_request()
    assert _authorize(client).get_json()["authorized"] is True
    catalog, directory = app.extensions["apolo_rates"], app.extensions["apolo_accounts"]
    wait_until("the watcher listens", lambda: catalog.listening)

    hook_url, received = webhooks
    stop = threading.Event()
    deliverer = threading.Thread(
        target=delivery_loop, daemon=True,
        args=(url, WebhookSettings(url=hook_url, secret="x" * 32, timeout=5, poll=60), stop),
    )  # fmt: skip
    deliverer.start()

    peer = EslPeer()
    from integration.control_support import control_settings, running

    try:
        with running(control_settings(url, redis_url, [peer], backoff_max_seconds=5.0)):
            pair.fail_over()
            TALLY.faults.append("postgresql primary lost, standby promoted")
            # the pool: requests fail (503) until the new primary takes them
            took = wait_until("authorizations again", lambda: _authorize(client).status_code == 200)
            assert _where(url) == (pair.standby_port, False)
            # the watcher reconnects, and an account change announced by the new primary
            # empties the account directory
            wait_until("the watcher listens again", lambda: catalog.listening)
            assert _authorize(client).get_json()["authorized"] is True
            assert len(directory) > 0
            with psycopg.connect(url) as c:
                c.execute("UPDATE accounts SET status = 'active' WHERE number = %s", (CALLER,))
            wait_until("the directory dropped", lambda: len(directory) == 0, 5)
            # apolo control: a call answered after the failover gets into its live table
            call_uuid = str(uuidlib.uuid4())
            assert _authorize(client, call_uuid).get_json()["authorized"] is True
            peer.answer(call_uuid, time.time(), 250)
            node = f"127.0.0.1:{peer.port}"
            live = redis_lib.Redis.from_url(redis_url, decode_responses=True)
            wait_until("control published the call",
                        lambda: call_uuid in live.smembers(live_calls.node_key(node)))  # fmt: skip
            # apolo alerts deliver: a low-balance alert queued on the new primary goes out
            with psycopg.connect(url) as c:
                c.execute("UPDATE accounts SET low_balance_threshold = 49.50"
                          " WHERE number = %s", (CALLER,))  # fmt: skip
            answered = time.time_ns() // 1000 - 60_000_000
            cdr = build_cdr(call_uuid, CALLER, CALLEE, answered, 60_000_000)
            posted = client.post(f"/freeswitch/cdr?uuid=a_{call_uuid}", data=cdr,
                                 content_type="text/xml", auth=FS_AUTH)  # fmt: skip
            assert posted.get_json()["billing_status"] == "charged"
            wait_until("the webhook was delivered", lambda: received, 15)
    finally:
        stop.set()
        peer.close()
        app.extensions["apolo_rates"].stop()
    assert took < 15


def _replicated(pair: PgPair) -> bool:
    with psycopg.connect(pair.url(pair.standby_port, attrs="any")) as c:
        return c.execute("SELECT 1 FROM accounts").fetchone() is not None


# ---------------------------------------------------------------------------- Sentinel


@pytest.fixture
def sentinels() -> Iterator[tuple[engines.RedisNode, engines.RedisNode, engines.SentinelNode]]:
    if missing := engines_missing("redis-server", "redis-sentinel"):
        pytest.skip(f"not installed: {' '.join(missing)}")
    directory = ROOT / ".data" / "reliability" / f"sentinel-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    password = "test-redis-secret"
    master = engines.RedisNode(directory, free_port(), password)
    replica = engines.RedisNode(directory, free_port(), password, replica_of=master.port)
    sentinel = engines.SentinelNode(
        directory, free_port(), "apolo-test", master.port, password,
        quorum=1, down_after_ms=300, failover_timeout_ms=2000,
    )  # fmt: skip
    nodes = (master, replica, sentinel)
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            if node.proc is not None:
                node.proc.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_sentinel_switch_is_followed_by_the_client_and_the_live_stream(
    sentinels: tuple[engines.RedisNode, engines.RedisNode, engines.SentinelNode],
) -> None:
    TALLY.scenarios.append("sentinel-switch")
    master, replica, sentinel = sentinels
    settings = load_settings(
        redis_url=f"redis://:{master.password}@localhost/0",
        redis_sentinels=(("127.0.0.1", sentinel.port),), redis_master="apolo-test",
    )  # fmt: skip
    client = redis_for(settings)
    known = lambda: int(_sentinel(sentinel).sentinel_master("apolo-test")["num-slaves"])  # noqa: E731
    wait_until("the sentinel knows the replica", known)
    direct = redis_lib.Redis(port=replica.port, password=master.password, decode_responses=True)
    # known to the sentinel is not yet in sync: on a loaded host the first sync takes seconds
    wait_until("the replica is in sync",
               lambda: direct.info("replication").get("master_link_status") == "up")  # fmt: skip
    live_calls.record_authorized(client, {"uuid": "before", "account": CALLER}, 60)
    wait_until("the replica has it", lambda: direct.exists(live_calls.call_key("before")))

    stream = _events(settings, StreamSettings(lifetime_seconds=30, heartbeat_seconds=1))
    assert next(stream).startswith("retry:")
    assert '"uuid":"before"' in next(stream)  # the snapshot, from the master
    ended = threading.Event()
    threading.Thread(target=lambda: (list(stream), ended.set()), daemon=True).start()

    assert master.proc is not None
    master.proc.kill()
    TALLY.faults.append("redis master killed")
    assert ended.wait(5), "the stream kept waiting on a dead master"
    wait_until("the sentinel promoted the replica",
               lambda: int(_sentinel(sentinel).sentinel_get_master_addr_by_name("apolo-test")[1])
               == replica.port)  # fmt: skip
    # the same client, no restart: its next writes go to the new master
    wait_until("writes again", lambda: live_calls.record_authorized(
        client, {"uuid": "after", "account": CALLER}, 60) or True)  # fmt: skip
    assert {c["uuid"] for c in live_calls.active(direct)} == {"before", "after"}
    fresh = _events(settings, StreamSettings(lifetime_seconds=1, heartbeat_seconds=1))
    next(fresh)
    snapshot = next(fresh)
    assert '"uuid":"before"' in snapshot and '"uuid":"after"' in snapshot
    fresh.close()


def _sentinel(node: engines.SentinelNode) -> redis_lib.Redis:
    return redis_lib.Redis(port=node.port, socket_timeout=1, decode_responses=True)
