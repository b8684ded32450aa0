"""The stage of the control-worker scenarios: a sidecar, the ESL peer, ``apolo control``.

``apolo control`` runs as its own process (so it can be killed with SIGKILL) against the
suite's private PostgreSQL/Redis and the ESL peer of this process. Two prepaid accounts
call: a rich one, whose calls the worker must always extend, and a poor one, whose
extensions run out so its calls are cut at their paid time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import redis as redis_lib
import requests
from conftest import ROOT, Seed, SidecarProcess, start_sidecar
from doubles.esl_peer import EslPeer
from psycopg.rows import dict_row

from reliability.books import ReservationWatch, assert_books
from reliability.conftest import PrivateServers
from reliability.control_switch import ControlledCall, ControlledSwitch, HangupWatch
from reliability.faults import kill_process, replay, spooled, stop_process
from reliability.switch import Switch
from reliability.tally import TALLY
from sidecar.services import live_calls

BLOCK = 60  # APOLO_RESERVATION_SECONDS: one 0.60 block per reservation or extension
BLOCK_COST = Decimal("0.60")
THRESHOLD = 10  # APOLO_EXTEND_THRESHOLD, above the switch's largest lead
RICH, POOR = Decimal("500.00"), Decimal("6.00")
SETTLE = 1.5  # a call up this long while the worker is up has been taken over (and extended)


@dataclass
class ControlProcess:
    """``apolo control`` as an operator runs it; its output goes to ``log``."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli", "control"],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        kill_process(self.proc, self.log)

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class ControlStage:
    servers: PrivateServers
    spool: Path
    peer: EslPeer
    sidecar: SidecarProcess
    control: ControlProcess
    switch: ControlledSwitch
    rich: str
    poor: str
    viewer: str
    # [start, end] of each time the worker was away (end None while it lasts)
    windows: list[list[float | None]] = field(default_factory=list)

    @property
    def node(self) -> str:
        return f"127.0.0.1:{self.peer.port}"

    def listings(self) -> int:
        return self.peer.commands.count("api show channels as json")

    def wait_listed(self, after: int, timeout: float = 20.0) -> float:
        """Wait for a channel listing after the ``after``-th one (the worker is in sync)."""
        deadline = time.monotonic() + timeout
        while self.listings() <= after:
            assert time.monotonic() < deadline, self.control.log.read_text()[-3000:]
            time.sleep(0.02)
        return time.time()

    def syncs(self) -> int:
        """How many times the worker got in sync with the switch and the database (its log)."""
        return self.control.log.read_text().count(": connected, ")

    def wait_synced(self, after: int, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while self.syncs() <= after:
            assert time.monotonic() < deadline, self.control.log.read_text()[-3000:]
            time.sleep(0.05)
        return time.time()

    def away(self) -> list[float | None]:
        window: list[float | None] = [time.time(), None]
        self.windows.append(window)
        return window

    def restart_control(self) -> None:
        """Start ``apolo control`` again and wait until it has listed the switch's channels."""
        seen = self.listings()
        self.control.start()
        self.wait_listed(seen)

    def run(
        self, fault: Callable[[], None], calls: int, seed: int, at: float, concurrency: int = 30
    ) -> list[ControlledCall]:
        """Play ``calls`` calls; ``fault`` runs ``at`` seconds in and returns once recovered."""
        results: list[ControlledCall] = []
        load = threading.Thread(
            target=lambda: results.extend(self.switch.run(calls, concurrency, seed))
        )
        with (
            ReservationWatch(self.servers.db_url, self.poor, interval=0.1) as watch,
            HangupWatch(self.peer, self.windows) as hangups,
        ):
            load.start()
            time.sleep(at)
            fault()
            load.join(timeout=240)
            assert not load.is_alive(), "the load did not finish"
        watch.assert_never_overspent()
        assert not hangups.violations, f"calls left with no scheduled hangup: {hangups.violations}"
        return results

    def check(self, results: list[ControlledCall]) -> dict[str, Any]:
        """Replay the err-log-dir, then the books, the extensions and the worker's grip."""
        files = len(spooled(self.spool))
        out = ""
        for _ in range(3):
            if not spooled(self.spool):
                break
            _code, out = replay(self.spool, self.sidecar.url)
            assert "rejected 0" in out, out
        assert spooled(self.spool) == [], out
        TALLY.spooled += files
        TALLY.replayed += files
        for number, initial in ((self.rich, RICH), (self.poor, POOR)):
            calls = [c for c in results if c.caller == number]
            assert_books(self.servers.db_url, number, initial, calls)
        rows = reservations(self.servers.db_url)
        figures = assert_extended_once(rows, results)
        figures.update(self.assert_managed(rows, results))
        api = self.peer.api_commands()
        figures["uuid_kill"] = sum(1 for c in api if c.startswith("uuid_kill"))
        figures["answered_time_asked"] = sum(1 for c in api if c.endswith(" answered_time"))
        figures["spooled"] = files
        figures["authorized"] = sum(1 for c in results if c.authorized)
        reasons = Counter(c.reason for c in results if not c.authorized)
        figures["refused"] = dict(reasons)
        # the live table forgets every call once it ended (the worker hears each hangup)
        client = redis_lib.Redis.from_url(self.servers.redis_url, decode_responses=True)
        deadline = time.monotonic() + 5
        while live_calls.for_node(client, self.node) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live_calls.for_node(client, self.node) == []
        return figures

    def assert_managed(
        self, rows: dict[str, dict[str, Any]], results: list[ControlledCall]
    ) -> dict[str, int]:
        """Every call up SETTLE s while the worker was up was taken over (and, rich, extended)."""
        start = min(c.answered_wall or c.ended_wall for c in results)
        end = max(c.ended_wall for c in results)
        ups = up_intervals(self.windows, start, end)
        expected = adopted = 0
        lost: list[str] = []
        unextended: list[str] = []
        for call in results:
            if not call.answered_wall:
                continue
            span = (call.answered_wall, call.ended_wall)
            if not any(overlap(span, up) >= SETTLE for up in ups):
                continue
            expected += 1
            row = rows[call.uuid]
            answered = row["answered_at"]
            if (
                answered is None
                or row["node"] != self.node
                or abs(answered.timestamp() - call.answered_us / 1e6) > 1e-3
            ):
                lost.append(call.uuid)
            elif call.caller == self.rich and row["extensions"] != 1:
                unextended.append(call.uuid)
            if any((w[0] or 0) <= call.answered_wall <= (w[1] or end) for w in self.windows):
                adopted += 1
        assert not lost, f"{len(lost)} calls never taken over by the worker: {lost[:3]}"
        assert not unextended, f"{len(unextended)} funded calls not extended: {unextended[:3]}"
        return {"managed": expected, "answered_while_away": adopted}

    def live_view(self, node: str | None = None) -> list[dict[str, Any]]:
        params = {"node": node} if node else {}
        resp = requests.get(
            f"{self.sidecar.url}/v1/calls/active", params=params,
            headers={"Authorization": f"Bearer {self.viewer}"}, timeout=10,
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        calls: list[dict[str, Any]] = resp.json()["calls"]
        return calls


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def up_intervals(
    windows: list[list[float | None]], start: float, end: float
) -> list[tuple[float, float]]:
    """[start, end] minus the windows the worker was away."""
    ups: list[tuple[float, float]] = []
    cursor = start
    for w_start, w_end in sorted((w[0] or start, w[1] or end) for w in windows):
        if w_start > cursor:
            ups.append((cursor, w_start))
        cursor = max(cursor, w_end)
    if end > cursor:
        ups.append((cursor, end))
    return ups


def reservations(db_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        rows = c.execute(
            "SELECT r.call_uuid, r.amount, r.extensions, r.max_duration, r.answered_at, r.node,"
            " r.status, d.cost FROM reservations r LEFT JOIN cdrs d ON d.reservation_id = r.id"
        ).fetchall()
    return {str(r["call_uuid"]): r for r in rows}


def assert_extended_once(
    rows: dict[str, dict[str, Any]], results: list[ControlledCall]
) -> dict[str, int]:
    """One block per extension, never two: a call needs one extension in these scenarios.

    A retried extension (its commit unknown after a fault) must find the reservation already
    grown and add nothing; every call's charge fits in what its reservation held.
    """
    bad = {
        u: (r["amount"], r["extensions"])
        for u, r in rows.items()
        if r["extensions"] > 1 or r["amount"] != BLOCK_COST * (1 + r["extensions"])
    }
    assert not bad, f"reservations grown other than by one block per extension: {bad}"
    over = {
        c.uuid: (rows[c.uuid]["cost"], rows[c.uuid]["amount"])
        for c in results
        if c.authorized and rows[c.uuid]["cost"] > rows[c.uuid]["amount"]
    }
    assert not over, f"calls that ran past what their reservation paid for: {over}"
    assert all(r["status"] != "open" for r in rows.values())
    extended = sum(1 for r in rows.values() if r["extensions"] == 1)
    cut = sum(1 for c in results if c.cause == "ALLOTTED_TIMEOUT")
    return {"extended": extended, "cut_at_paid_time": cut}


def make_stage(
    servers: PrivateServers, seed: Seed, tmp_path: Path, **control_env: str
) -> ControlStage:
    rate = [("51", str(BLOCK_COST))]
    rich = seed.account("400001", balance=str(RICH), rates=rate)
    poor = seed.account("400002", balance=str(POOR), rates=rate)
    with psycopg.connect(servers.db_url, autocommit=True) as c:
        c.execute("TRUNCATE control_audit")
    peer = EslPeer()
    sidecar = start_sidecar(
        servers.db_url, servers.redis_url,
        APOLO_RESERVATION_SECONDS=str(BLOCK), APOLO_DB_TIMEOUT="1.0",
    )  # fmt: skip
    env = {
        **os.environ,
        "DATABASE_URL": servers.db_url,
        "REDIS_URL": servers.redis_url,
        "APOLO_FREESWITCH": peer.address,
        "APOLO_RESERVATION_SECONDS": str(BLOCK),
        "APOLO_EXTEND_THRESHOLD": str(THRESHOLD),
        "APOLO_CONTROL_TICK_SECONDS": "0.1",
        "APOLO_EXTEND_RETRY_SECONDS": "0.5",
        "APOLO_RECONCILE_SECONDS": "1",
        "APOLO_CONTROL_BACKOFF_MAX_SECONDS": "0.5",
        "APOLO_CONTROL_COMMAND_TIMEOUT": "2",
        "APOLO_DB_TIMEOUT": "1.0",
        "APOLO_LOG_LEVEL": "INFO",
        **control_env,
    }
    control = ControlProcess(env, tmp_path / "control.log")
    lines = [
        Switch([sidecar.url], tmp_path, caller=number, retries=3, delay=0.5)
        for number in (rich, rich, rich, poor)
    ]
    stage = ControlStage(
        servers, tmp_path, peer, sidecar, control, ControlledSwitch(peer, lines), rich, poor,
        seed.token("viewer"),
    )  # fmt: skip
    stage.restart_control()
    return stage
