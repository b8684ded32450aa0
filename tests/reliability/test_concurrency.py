"""Many calls in flight on one prepaid account through two sidecar processes."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Seed, SidecarProcess, start_sidecar

from reliability.books import ReservationWatch, assert_books
from reliability.conftest import PrivateServers
from reliability.switch import Switch, run_load
from reliability.tally import TALLY


@pytest.fixture
def pair(servers: PrivateServers, rel_seed: Seed) -> Iterator[list[SidecarProcess]]:
    sidecars = [
        start_sidecar(servers.db_url, servers.redis_url, APOLO_RESERVATION_SECONDS="60")
        for _ in range(2)
    ]
    yield sidecars
    for s in sidecars:
        s.stop()


def _run(
    pair: list[SidecarProcess],
    rel_seed: Seed,
    servers: PrivateServers,
    tmp_path: Path,
    calls: int,
    balance: str,
    seed: int,
    talk: float,
) -> None:
    number = rel_seed.account("200001", balance=balance, rates=[("51", "0.60")])
    switch = Switch([s.url for s in pair], tmp_path, caller=number)
    with ReservationWatch(servers.db_url, number) as watch:
        # every call talks longer than it takes to authorize them all: all in flight together
        results = run_load(switch, calls, concurrency=calls, seed=seed, talk_wall=(talk, talk + 2))
    watch.assert_never_overspent()
    granted = [c for c in results if c.authorized]
    blocks = int(Decimal(balance) / Decimal("0.60"))  # one 60 s block of 0.60 per call
    assert blocks <= len(granted) <= blocks + 1  # a last, partial block may be granted
    assert watch.peak_open >= blocks  # the granted calls really were in flight at once
    assert {c.reason for c in results if not c.authorized} <= {"insufficient_balance"}
    assert switch.authorize_errors == 0 and not any(c.spooled for c in results)
    assert_books(servers.db_url, number, Decimal(balance), results)


def test_calls_in_flight_never_overspend_fast(
    pair: list[SidecarProcess], rel_seed: Seed, servers: PrivateServers, tmp_path: Path
) -> None:
    TALLY.scenarios.append("concurrency-60")
    _run(pair, rel_seed, servers, tmp_path, calls=60, balance="24.30", seed=1, talk=2.0)


@pytest.mark.reliability
def test_500_calls_in_flight_never_overspend(
    pair: list[SidecarProcess], rel_seed: Seed, servers: PrivateServers, tmp_path: Path
) -> None:
    TALLY.scenarios.append("concurrency-500")
    _run(pair, rel_seed, servers, tmp_path, calls=500, balance="200.10", seed=2, talk=5.0)
