"""Authorization when a dependency fails under a running sidecar (private servers).

The integration tier covers a sidecar started against a PostgreSQL that never answered; these
take the servers away from a sidecar that was working, which is what happens in production.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Iterator

import psycopg
import pytest
import requests
from conftest import FS_AUTH, Seed, SidecarProcess, call_body, start_sidecar

from reliability.conftest import PrivateServers
from reliability.tally import TALLY


@pytest.fixture
def sidecar(servers: PrivateServers, rel_seed: Seed) -> Iterator[SidecarProcess]:
    rel_seed.account("400001", balance="1.20", rates=[("51", "0.60")])  # two 60 s blocks
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1,
        APOLO_RESERVATION_SECONDS="60", APOLO_DB_TIMEOUT="1.0",
    )  # fmt: skip
    yield process
    process.stop()
    servers.start()


def _authorize(url: str, uuid: str | None = None) -> requests.Response:
    body = call_body(uuid or str(uuidlib.uuid4()), "400001")
    return requests.post(f"{url}/v1/authorize", json=body, auth=FS_AUTH, timeout=10)


def _open_reservations(db_url: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT count(*) FROM reservations WHERE status = 'open'").fetchone()
    assert row is not None
    return int(row[0])


def test_postgresql_down_fails_closed(sidecar: SidecarProcess, servers: PrivateServers) -> None:
    TALLY.scenarios.append("postgresql-down-authorize")
    assert _authorize(sidecar.url).status_code == 200  # the worker's pool is open and used
    servers.stop_postgres()
    TALLY.faults.append("postgresql stop")
    answers = [_authorize(sidecar.url) for _ in range(3)]
    assert all(a.status_code >= 500 for a in answers)
    assert not any(a.json().get("authorized") for a in answers)
    health = requests.get(f"{sidecar.url}/healthz", timeout=5)
    assert (health.status_code, health.json()["checks"]["postgresql"]) == (503, "down")
    servers.start()
    assert _open_reservations(servers.db_url) == 1  # nothing reserved while it was down


def test_postgresql_down_answers_database_unavailable(
    sidecar: SidecarProcess, servers: PrivateServers
) -> None:
    assert _authorize(sidecar.url).status_code == 200
    servers.stop_postgres()
    answer = _authorize(sidecar.url)
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "database_unavailable")


def test_every_request_succeeds_once_postgresql_is_back(
    sidecar: SidecarProcess, servers: PrivateServers
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # several pooled connections in use
        list(pool.map(lambda _: requests.get(f"{sidecar.url}/healthz", timeout=5), range(32)))
    servers.restart_postgres()
    codes = [requests.get(f"{sidecar.url}/healthz", timeout=5).status_code for _ in range(3)]
    codes += [_authorize(sidecar.url).status_code for _ in range(6)]
    assert codes == [200] * 9, codes


def test_redis_down_authorizes_correctly_and_reports_degraded(
    sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed
) -> None:
    TALLY.scenarios.append("redis-down-authorize")
    token = rel_seed.token("viewer")
    assert _authorize(sidecar.url).json()["authorized"] is True  # Redis connection in use
    servers.stop_redis()
    TALLY.faults.append("redis stop")
    second = _authorize(sidecar.url).json()
    third = _authorize(sidecar.url).json()
    assert (second["authorized"], second["max_duration"]) == (True, 60)
    assert (third["authorized"], third["reason"]) == (False, "insufficient_balance")
    health = requests.get(f"{sidecar.url}/healthz", timeout=5)
    assert (health.status_code, health.json()["status"]) == (200, "degraded")
    assert health.json()["checks"]["redis"] == "down"
    live = requests.get(
        f"{sidecar.url}/v1/calls/active", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert (live.status_code, live.json()["error"]["code"]) == (503, "live_state_unavailable")
    assert _open_reservations(servers.db_url) == 2


def test_live_calls_are_rebuilt_after_redis_loses_its_data(
    sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed
) -> None:
    token = rel_seed.token("viewer")
    calls = {str(uuidlib.uuid4()) for _ in range(2)}
    for call in calls:
        assert _authorize(sidecar.url, call).json()["authorized"] is True

    def active() -> set[str]:
        resp = requests.get(
            f"{sidecar.url}/v1/calls/active", headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )  # fmt: skip
        assert resp.status_code == 200
        return {c["uuid"] for c in resp.json()["calls"]}

    assert active() == calls
    servers.flushall()
    deadline = time.monotonic() + 5
    while active() != calls and time.monotonic() < deadline:
        time.sleep(0.5)
    assert active() == calls
