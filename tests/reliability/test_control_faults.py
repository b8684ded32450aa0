"""Faults around the mid-call control worker (``apolo control``) while calls run.

Calls are authorized by a sidecar, answered on the ESL test peer, extended (or cut at their
paid time) by the worker, and their CDRs posted. Each scenario injects its fault part-way;
afterwards every call is charged once at its price, no reservation is left open, no
reservation grew by more than the one block it needed, every call up long enough while the
worker was up was taken over by it (funded ones extended), no answered call went without a
scheduled hangup beyond a fault, and the live table holds no ended call
(``ControlStage.check``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Seed

from reliability.conftest import PrivateServers
from reliability.control_stage import SETTLE, ControlStage, make_stage
from reliability.tally import TALLY


@pytest.fixture
def stage(servers: PrivateServers, rel_seed: Seed, tmp_path: Path) -> Iterator[ControlStage]:
    s = make_stage(servers, rel_seed, tmp_path)
    yield s
    s.control.stop()
    s.sidecar.stop()
    s.peer.close()
    servers.start()


def _shown_right(stage: ControlStage, view: list[dict[str, Any]], uuids: set[str]) -> None:
    """Each call of ``uuids`` is in ``view`` on the peer's node, with its answer time."""
    shown = {c["uuid"]: c for c in view}
    by_uuid = {c.uuid: c for c in stage.switch.calls}
    missing = sorted(uuids - set(shown))
    assert not missing, f"{len(missing)} of {len(uuids)} live calls missing: {missing[:3]}"
    for uuid in uuids:
        assert shown[uuid].get("node") == stage.node, shown[uuid]
        answered = float(shown[uuid]["answered_at"])
        assert abs(answered - by_uuid[uuid].answered_us / 1e6) < 2e-3, shown[uuid]


def _steady(stage: ControlStage) -> set[str]:
    """Calls the worker has had time to take over (answered SETTLE s ago, still up)."""
    return {c.uuid for c in stage.switch.live() if time.time() - c.answered_wall > SETTLE}


def _still_up(stage: ControlStage, uuids: set[str]) -> set[str]:
    return uuids & {c.uuid for c in stage.switch.live()}


@pytest.mark.reliability
def test_kill_9_of_the_control_worker(stage: ControlStage) -> None:
    """Killed mid-call and restarted twice: it adopts what was answered meanwhile."""
    TALLY.scenarios.append("control-kill-9")

    def fault() -> None:
        for _ in range(2):
            window = stage.away()
            stage.control.kill()
            TALLY.faults.append("kill -9 control worker")
            time.sleep(1.5)
            stage.restart_control()
            window[1] = time.time()
            time.sleep(3.0)

    results = stage.run(fault, calls=160, seed=21, at=3.0)
    figures = stage.check(results)
    print(f"{TALLY.scenarios[-1]}: {figures}")
    assert figures["answered_while_away"] >= 3, figures
    assert figures["answered_time_asked"] >= 3, figures  # adopted with uuid_getvar


@pytest.mark.reliability
def test_redis_loses_everything_under_the_control_worker(stage: ControlStage) -> None:
    """FLUSHALL, then a Redis restart with the worker restarted while Redis is down."""
    TALLY.scenarios.append("control-redis-loss")

    def fault() -> None:
        stage.servers.flushall()
        TALLY.faults.append("redis flushall")
        # the sidecar rebuilds the live table from PostgreSQL (node and answer time included)
        before = _steady(stage)
        view = stage.live_view()
        _shown_right(stage, view, _still_up(stage, before))
        # the worker's own table (one node) comes back from its channel listing
        time.sleep(2.5)
        before = _steady(stage)
        view = stage.live_view(stage.node)
        _shown_right(stage, view, _still_up(stage, before))

        window = stage.away()
        stage.servers.stop_redis()
        TALLY.faults.append("redis restart")
        stage.control.kill()  # and it cannot reload its calls from Redis at start
        TALLY.faults.append("kill -9 control worker")
        stage.restart_control()
        window[1] = time.time()
        time.sleep(1.0)
        stage.servers.start()  # empty
        time.sleep(2.5)
        before = _steady(stage)
        view = stage.live_view(stage.node)
        _shown_right(stage, view, _still_up(stage, before))

    results = stage.run(fault, calls=160, seed=22, at=3.0)
    figures = stage.check(results)
    print(f"{TALLY.scenarios[-1]}: {figures}")
    assert figures["answered_while_away"] >= 1, figures


@pytest.mark.reliability
def test_postgresql_restart_under_the_control_worker(stage: ControlStage) -> None:
    """PostgreSQL goes away while the worker extends: it waits, reconnects, extends once."""
    TALLY.scenarios.append("control-postgresql-restart")

    def fault() -> None:
        window = stage.away()
        synced = stage.syncs()
        stage.servers.stop_postgres()
        TALLY.faults.append("postgresql stop/start")
        time.sleep(3.5)
        stage.servers.start()
        # back once its pool reconnects (psycopg_pool backs off: seconds after the restart)
        window[1] = stage.wait_synced(synced)
        time.sleep(3.0)

    for line in stage.switch.lines:  # give up quickly: CDRs of the outage go to the err-log-dir
        line.retries, line.delay = 1, 0.2
    results = stage.run(fault, calls=160, seed=23, at=3.0)
    assert stage.control.proc is not None and stage.control.proc.poll() is None
    figures = stage.check(results)
    print(f"{TALLY.scenarios[-1]}: {figures}")
    assert figures["spooled"] > 0  # the outage bounced CDRs to the err-log-dir


def test_esl_connection_drops_and_comes_back(stage: ControlStage) -> None:
    """The switch closes the socket (once mid-move) or refuses it a while; the worker re-syncs."""
    TALLY.scenarios.append("control-esl-drop")

    def fault() -> None:
        window = stage.away()
        seen = stage.listings()
        stage.peer.drop()
        TALLY.faults.append("esl connection dropped")
        stage.wait_listed(seen)
        window[1] = time.time()
        time.sleep(1.5)

        window = stage.away()
        stage.peer.drop_after = "sched_del"  # right after a pending hangup was deleted
        deadline = time.monotonic() + 10
        while stage.peer.drop_after is not None:
            assert time.monotonic() < deadline, "no extension moved a hangup"
            time.sleep(0.01)
        TALLY.faults.append("esl connection dropped mid-move")
        stage.wait_listed(stage.listings())
        window[1] = time.time()
        time.sleep(1.5)

        window = stage.away()
        stage.peer.refusing = True  # the switch restarts: connections refused for a while
        stage.peer.drop()
        TALLY.faults.append("esl connection refused 1 s")
        time.sleep(1.0)
        seen = stage.listings()
        stage.peer.refusing = False
        stage.wait_listed(seen)
        window[1] = time.time()

    stage.switch.talk = (1.0, 4.0)  # short calls: this scenario runs in `make test`
    results = stage.run(fault, calls=70, seed=24, at=1.5, concurrency=20)
    figures = stage.check(results)
    print(f"{TALLY.scenarios[-1]}: {figures}")
    assert stage.peer.connections >= 4
    assert figures["managed"] > 0 and figures["answered_while_away"] > 0, figures
