"""The sidecar as deployed: real gunicorn processes on the real test database and Redis."""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest
import requests
from conftest import FS_AUTH, call_body, free_port, start_sidecar
from fixtures_path import FS_FIXTURES, read_http_capture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(db_url, redis_url):  # type: ignore[no-untyped-def]
    """Two independent sidecar processes (2 workers each) reserving 60 s blocks."""
    sidecars = [start_sidecar(db_url, redis_url, APOLO_RESERVATION_SECONDS="60") for _ in range(2)]
    yield sidecars
    for s in sidecars:
        s.stop()


def _authorize(url: str, caller: str, callee: str = "51987654321", uuid: str | None = None):  # type: ignore[no-untyped-def]
    body = call_body(uuid or str(uuidlib.uuid4()), caller, callee)
    return requests.post(f"{url}/v1/authorize", json=body, auth=FS_AUTH, timeout=10)


def test_parallel_authorizations_never_overspend(pair, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00", rates=[("51", "0.60")])  # 10 blocks of 0.60
    start = threading.Barrier(50)

    def call(i: int) -> dict:  # type: ignore[type-arg]
        start.wait()
        return _authorize(pair[i % 2].url, "100001").json()

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(call, range(50)))
    granted = [a for a in answers if a["authorized"]]
    assert len(granted) == 10
    assert {a["reason"] for a in answers if not a["authorized"]} == {"insufficient_balance"}
    assert all(a["max_duration"] == 60 for a in granted)
    with psycopg.connect(db_url) as c:
        total, count = c.execute(
            "SELECT sum(amount), count(*) FROM reservations WHERE status = 'open'"
        ).fetchone()
    assert (total, count) == (Decimal("6.0000"), 10)
    assert seed.balance("100001") == {
        "balance": "6.0000",
        "reserved": "6.0000",
        "available": "0.0000",
        "active_calls": "10",
    }


def test_concurrent_duplicate_cdrs_are_charged_once(pair, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    cap = read_http_capture(
        FS_FIXTURES / "xml_cdr/textxml/answered_uuid_kill_loopback_b_inbound.http"
    )
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    record_uuid = cap.query["uuid"][0].removeprefix("a_")
    assert _authorize(pair[0].url, "100001", uuid=record_uuid).json()["authorized"]
    barrier = threading.Barrier(6)

    def post(i: int) -> int:
        barrier.wait()
        return requests.post(
            f"{pair[i % 2].url}/freeswitch{cap.target}",
            data=cap.body,
            headers={"Content-Type": cap.content_type},
            auth=FS_AUTH,
            timeout=10,
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(post, range(6)))
    assert codes == [200] * 6
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT count(*) FROM cdrs").fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM ledger WHERE kind = 'call_charge'").fetchone() == (
            1,
        )
    assert seed.balance("100001")["balance"] == "9.4000"


def test_rate_change_reaches_every_worker_within_a_second(pair, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="100000.00", rates=[("51", "0.60")])
    stop = threading.Event()
    seen: list[tuple[float, str]] = []

    def load(i: int) -> None:
        session = requests.Session()
        while not stop.is_set():
            body = call_body(str(uuidlib.uuid4()), "100001")
            answer = session.post(
                f"{pair[i % 2].url}/v1/authorize", json=body, auth=FS_AUTH, timeout=10
            ).json()
            seen.append((time.monotonic(), answer["rate"]["rate_per_minute"]))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE rates SET rate_per_minute = 0.75 WHERE prefix = '51'")
    changed_at = time.monotonic()
    time.sleep(2.5)
    stop.set()
    for t in threads:
        t.join()
    before = [rate for at, rate in seen if at < changed_at]
    after = [rate for at, rate in seen if at > changed_at + 1.0]
    assert before and set(before) == {"0.600000"}
    assert len(after) > 20 and set(after) == {"0.750000"}


def test_database_down_fails_closed(db_url, redis_url) -> None:  # type: ignore[no-untyped-def]
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/apolo"
    sidecar = start_sidecar(dead, redis_url, workers=1)
    try:
        resp = _authorize(sidecar.url, "100001")
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "database_unavailable"
        cap = read_http_capture(
            FS_FIXTURES / "xml_cdr/textxml/answered_uuid_kill_loopback_b_inbound.http"
        )
        resp = requests.post(
            f"{sidecar.url}/freeswitch{cap.target}",
            data=cap.body,
            headers={"Content-Type": "text/xml"},
            auth=FS_AUTH,
            timeout=10,
        )
        assert resp.status_code == 503  # FreeSWITCH keeps the CDR and retries / spools it
        health = requests.get(f"{sidecar.url}/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["checks"]["postgresql"] == "down"
    finally:
        sidecar.stop()


def test_redis_down_still_authorizes_correctly(db_url, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="1.20", rates=[("51", "0.60")])
    sidecar = start_sidecar(db_url, f"redis://127.0.0.1:{free_port()}/0", workers=1)
    try:
        answer = _authorize(sidecar.url, "100001").json()
        assert answer["authorized"] is True and answer["max_duration"] == 120
        assert _authorize(sidecar.url, "100001").json()["reason"] == "insufficient_balance"
        health = requests.get(f"{sidecar.url}/healthz", timeout=5).json()
        assert health["status"] == "degraded" and health["checks"]["redis"] == "down"
    finally:
        sidecar.stop()


def test_metrics_add_up_every_worker(pair, seed) -> None:  # type: ignore[no-untyped-def]
    from metrics_support import counter

    seed.account("100001", balance="100.00", rates=[("51", "0.60")])
    url = pair[0].url
    before = counter(requests.get(f"{url}/metrics", timeout=5).text, "apolo_authorizations")
    with ThreadPoolExecutor(8) as pool:  # spread over both gunicorn workers
        answers = list(pool.map(lambda _: _authorize(url, "100001").status_code, range(24)))
    assert answers == [200] * 24
    scrapes = [requests.get(f"{url}/metrics", timeout=5).text for _ in range(4)]
    for text in scrapes:  # whichever worker answers the scrape sees all 24
        assert counter(text, "apolo_authorizations") - before == 24


def _mapped(pid: int, fragment: str) -> bool:
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        return any(fragment in line for line in maps)


def test_the_workers_share_the_libraries_the_master_imported(pair) -> None:  # type: ignore[no-untyped-def]
    """``apolo serve`` imports the heavy libraries in gunicorn's master, before the fork
    (sidecar/gunicorn_conf.py): a worker maps lxml's extension from the master's pages."""
    master = pair[0].proc.pid  # `apolo serve` became gunicorn's master (exec)
    with open(f"/proc/{master}/task/{master}/children", encoding="utf-8") as f:
        workers = [int(p) for p in f.read().split()]
    assert len(workers) == 2
    assert _mapped(master, "lxml/etree")
    assert all(_mapped(w, "lxml/etree") for w in workers)
