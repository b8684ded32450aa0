"""Failover on the real engines (slow: ``make reliability``): Patroni with etcd under two
sidecars, one on a multi-host URL and one behind HAProxy's Patroni checks; and a sidecar
dying behind HAProxy while a switch keeps calling. ``make ha-drill`` runs them all under load.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import requests
from conftest import FS_PASSWORD, ROOT, TEST_PBX, Seed, call_body, free_port

from reliability.ha_servers import engines, engines_missing, haproxy, processes
from reliability.tally import TALLY
from sidecar.simulator.cdr_template import build_cdr

pytestmark = pytest.mark.reliability
AUTH = ("freeswitch", FS_PASSWORD)
CALLER, CALLEE = "100001", "51987654321"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    directory = ROOT / ".data" / "reliability" / f"engines-{os.getpid()}"
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    directory.chmod(0o755)  # Patroni's nodes (postgres) live below
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _sidecar(directory: Path, name: str, db_url: str, redis_url: str) -> processes.ApoloProc:
    port = free_port()
    return processes.ApoloProc(directory, name, ["serve", "--bind", f"127.0.0.1:{port}",
                                               "--workers", "1", "--threads", "8"], {
        "DATABASE_URL": db_url, "REDIS_URL": redis_url, "APOLO_FS_PASSWORD": FS_PASSWORD,
        "APOLO_TRUSTED_PROXIES": "127.0.0.1/32", "APOLO_LOG_LEVEL": "WARNING",
        "APOLO_INDEX_DIR": str(directory / "rates-index"), "APOLO_ACCESS_LOG": "false",
        "APOLO_DB_TIMEOUT": "1.0",
    }, health_url=f"http://127.0.0.1:{port}/healthz", port=port)  # fmt: skip


def _authorize(url: str, call_uuid: str = "", timeout: float = 1.5) -> bool:
    body = call_body(call_uuid or str(uuidlib.uuid4()), CALLER, CALLEE)
    try:
        resp = requests.post(f"{url}/v1/authorize", json=body, auth=AUTH, timeout=timeout)
    except requests.RequestException as exc:
        ERRORS.append(f"authorize: {exc}")
        return False
    if resp.status_code != 200 or resp.json().get("authorized") is not True:
        ERRORS.append(f"authorize: HTTP {resp.status_code} {resp.text[:200]}")
        return False
    return True


ERRORS: list[str] = []


def _post_cdr(url: str, call_uuid: str) -> bool:
    answered = time.time_ns() // 1000 - 61_000_000
    xml = build_cdr(call_uuid, CALLER, CALLEE, answered, 61_000_000, TEST_PBX)
    try:
        resp = requests.post(f"{url}/freeswitch/cdr", params={"uuid": f"a_{call_uuid}"},
                             data=xml, headers={"Content-Type": "text/xml"}, auth=AUTH,
                             timeout=5)  # fmt: skip
    except requests.RequestException as exc:
        ERRORS.append(f"CDR: {exc}")
        return False
    if resp.status_code != 200:
        ERRORS.append(f"CDR: HTTP {resp.status_code} {resp.text[:200]}")
    return resp.status_code == 200


def _stored(url: str, uuids: list[str]) -> dict[str, int]:
    with psycopg.connect(url) as c:
        rows = c.execute("SELECT call_uuid, count(*) FROM cdrs WHERE call_uuid = ANY(%s)"
                         " GROUP BY call_uuid", (uuids,)).fetchall()  # fmt: skip
    return {u: int(n) for u, n in rows}


def test_sidecar_dying_behind_haproxy_costs_no_request(
    run_dir: Path, db_url: str, redis_url: str, seed: Seed
) -> None:
    if missing := engines_missing("haproxy"):
        pytest.skip(f"not installed: {' '.join(missing)}")
    TALLY.scenarios.append("sidecar-dies-behind-haproxy")
    ERRORS.clear()
    # enough for every call four switch threads can make on a fast host (a call costs 0.61)
    seed.account(CALLER, balance="1000000.00", rates=[("51", "0.60")])
    sidecars = [_sidecar(run_dir, f"sidecar{i}", db_url, redis_url) for i in (1, 2)]
    bind = free_port()
    proxy = haproxy.HAProxy(run_dir, haproxy.haproxy_config(
        [s.port for s in sidecars], bind, [], free_port(), free_port(),
        run_dir / "haproxy.sock"), [bind])  # fmt: skip
    url = f"http://127.0.0.1:{bind}"
    outcomes: list[tuple[float, bool, bool]] = []  # (when, authorized, CDR stored)
    acknowledged: list[str] = []
    stop = threading.Event()

    def switch() -> None:
        while not stop.is_set():
            call_uuid = str(uuidlib.uuid4())
            ok_auth = _authorize(url, call_uuid)
            ok_cdr = _post_cdr(url, call_uuid)
            if ok_cdr:
                acknowledged.append(call_uuid)
            outcomes.append((time.time(), ok_auth, ok_cdr))

    try:
        for sidecar in sidecars:
            sidecar.start()
        proxy.start()
        processes.wait_for("both up", lambda: list(proxy.server_states("sidecars").values())
                         == ["UP", "UP"], 20)  # fmt: skip
        threads = [threading.Thread(target=switch, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        assert sidecars[0].proc is not None
        sidecars[0].proc.kill()  # the gunicorn master and its workers, at once
        TALLY.faults.append("sidecar kill -9 behind haproxy")
        killed = time.time()
        down = lambda: proxy.server_states("sidecars")["sidecar1"] == "DOWN"  # noqa: E731
        processes.wait_for("haproxy marks it down", down, 10)
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(10)
    finally:
        stop.set()
        for proc in [proxy.proc, *(s.proc for s in sidecars)]:
            if proc is not None:
                proc.stop()
    after = [o for o in outcomes if o[0] >= killed]
    assert len(after) > 20, "the switch barely called after the kill"
    failed = [o for o in outcomes if not (o[1] and o[2])]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {ERRORS[:3]}"
    stored = _stored(db_url, acknowledged)
    assert sorted(stored) == sorted(acknowledged) and set(stored.values()) == {1}
    TALLY.calls += len(outcomes)
    TALLY.cdrs += len(stored)


def test_patroni_failover_under_sidecars_on_both_routes(run_dir: Path, redis_url: str) -> None:
    if missing := engines_missing("patroni", "etcd", "haproxy"):
        pytest.skip(f"not installed: {' '.join(missing)}")
    TALLY.scenarios.append("patroni-failover")
    secrets = processes.Secrets()
    etcd = engines.Etcd(run_dir, free_port(), free_port())
    passwords = {k: secrets[k] for k in ("superuser", "replication", "rewind")}
    nodes = [engines.PatroniNode(run_dir, f"pg{i}", free_port(), free_port(), etcd, "apolo-test",
                                 passwords) for i in (1, 2)]  # fmt: skip
    app = f"apolo:{secrets['apolo']}"
    multi = (f"postgresql://{app}@" + ",".join(f"127.0.0.1:{n.pg_port}" for n in nodes)
             + "/apolo?target_session_attrs=read-write&connect_timeout=2")  # fmt: skip
    pg_rw, bind = free_port(), free_port()
    via_haproxy = f"postgresql://{app}@127.0.0.1:{pg_rw}/apolo?connect_timeout=2"
    sidecars = [_sidecar(run_dir, "sidecar1", multi, redis_url),
                _sidecar(run_dir, "sidecar2", via_haproxy, redis_url)]  # fmt: skip
    proxy = haproxy.HAProxy(run_dir, haproxy.haproxy_config(
        [s.port for s in sidecars], bind, nodes, pg_rw, free_port(), run_dir / "haproxy.sock"),
        [bind, pg_rw])  # fmt: skip
    try:
        etcd.start()
        nodes[0].start()
        processes.wait_for("pg1 primary", nodes[0].is_primary, 90, every=0.5)
        nodes[1].start()
        processes.wait_for("pg2 synchronous", nodes[1].is_sync_standby, 120, every=0.5)
        admin = (
            f"postgresql://postgres:{secrets['superuser']}@127.0.0.1:{nodes[0].pg_port}/postgres"
        )
        engines.create_database(admin, secrets["apolo"], multi)
        Seed(multi).account(CALLER, balance="1000.00", rates=[("51", "0.60")])
        proxy.start()
        for sidecar in sidecars:
            sidecar.start()
        urls = [f"http://127.0.0.1:{s.port}" for s in sidecars]
        acknowledged = []
        for _ in range(10):
            for url in urls:
                call_uuid = str(uuidlib.uuid4())
                assert _authorize(url, call_uuid) and _post_cdr(url, call_uuid)
                acknowledged.append(call_uuid)

        nodes[0].kill()
        TALLY.faults.append("patroni primary node killed")
        killed = time.monotonic()
        processes.wait_for("pg2 promoted", nodes[1].is_primary, 60)
        back = {}
        for url in urls:  # each route finds the new primary on its own
            call_uuid = str(uuidlib.uuid4())
            processes.wait_for(f"{url} authorizes", lambda: _authorize(url, call_uuid), 60, 0.2)  # noqa: B023
            back[url] = time.monotonic() - killed
            assert _post_cdr(url, call_uuid)
            acknowledged.append(call_uuid)
        # synchronous replication: every CDR answered 2xx before the kill is on the new primary
        stored = _stored(multi, acknowledged)
        assert sorted(stored) == sorted(acknowledged) and set(stored.values()) == {1}
        with psycopg.connect(multi) as c:
            balance, ledger = c.execute(
                "SELECT a.balance, (SELECT sum(amount) FROM ledger l WHERE l.account_id = a.id)"
                " FROM accounts a WHERE number = %s", (CALLER,)).fetchone()  # type: ignore[misc]  # fmt: skip
        assert balance == ledger == Decimal("1000.00") - Decimal("1.20") * len(acknowledged)
        assert max(back.values()) < 45, back
        TALLY.cdrs += len(stored)
    finally:
        for sidecar in sidecars:
            if sidecar.proc is not None:
                sidecar.proc.stop()
        if proxy.proc is not None:
            proxy.proc.stop()
        for node in reversed(nodes):
            node.stop()
        if etcd.proc is not None:
            etcd.proc.stop()
