"""Faults around ``apolo cucm watch`` while real CUCM files arrive in its directory.

After recovery every file is archived (none failed), stored once by name + hash, every
CDR/CMR record stored once by pkid, every billed call charged once at its price, and the
account's balance equals its ledger (``CucmStage.check``). CUCM's resends (same name and
content) and a copy under another name (same pkids) are delivered too, and charge nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Seed, start_sidecar
from unit.cucm.cucm_rows import answered_row, siete

from reliability.conftest import PrivateServers
from reliability.cucm_stage import (
    INITIAL,
    RPM,
    SIDECAR_ENV,
    CucmFile,
    CucmStage,
    WatchProcess,
    fixture_files,
    generated_cmrs,
    generated_files,
)
from reliability.faults import kill_sidecar
from reliability.http_faults import FaultProxy
from reliability.tally import TALLY

pytestmark = pytest.mark.reliability


@pytest.fixture
def cucm(servers: PrivateServers, rel_seed: Seed, tmp_path: Path) -> Iterator[CucmStage]:
    table = siete()
    talk = answered_row(table)
    caller = table.value(talk, "callingPartyNumber")
    plan = rel_seed.plan([(table.value(talk, "finalCalledPartyNumber")[:4], RPM)])
    rel_seed.account(caller, balance=str(INITIAL), plan=plan)
    sidecar = start_sidecar(servers.db_url, servers.redis_url, **SIDECAR_ENV)
    proxy = FaultProxy(sidecar.url)
    drop = tmp_path / "drop"
    drop.mkdir()
    watcher = WatchProcess(drop, proxy.url, rel_seed.token("switch"), tmp_path / "watch.log")
    stage = CucmStage(servers.db_url, drop, sidecar, proxy, watcher, caller)
    yield stage
    watcher.stop()
    stage.sidecar.stop()
    proxy.close()
    servers.start()


def _resent(stage: CucmStage, files: list[CucmFile]) -> None:
    """CUCM resends ten delivered files; a second cluster node sends five under its name."""
    copies = [replace(f, name=f.name.replace("_02_", "_03_")) for f in files[10:15]]
    stage.drop(files[:10] + copies)


def _dropper(stage: CucmStage, files: list[CucmFile], every: float) -> threading.Thread:
    def run() -> None:
        for f in files:
            stage.drop([f])
            time.sleep(every)

    thread = threading.Thread(target=run, name="cucm-drop")
    thread.start()
    return thread


def test_kill_9_of_the_watcher_mid_batch(cucm: CucmStage) -> None:
    TALLY.scenarios.append("cucm-watch-kill-9")
    batch = generated_files(150, seed=31, first_seq=1000)
    cucm.drop(fixture_files() + batch + generated_cmrs(10, first_seq=5000))
    cucm.watcher.start()
    for upto in (10, 50, 100):
        cucm.wait_archived(upto)
        cucm.watcher.kill()
        TALLY.faults.append("kill -9 cucm watcher")
        time.sleep(0.3)
        cucm.watcher.start()
    cucm.wait_archived(len(cucm.dropped))
    _resent(cucm, batch)
    figures = cucm.check()
    print(f"cucm-watch-kill-9: {figures}")


def test_postgresql_restart_while_the_watcher_ingests(
    cucm: CucmStage, servers: PrivateServers
) -> None:
    TALLY.scenarios.append("cucm-watch-postgresql-restart")
    batch = generated_files(120, seed=32, first_seq=2000)
    cucm.watcher.start()
    dropper = _dropper(cucm, fixture_files() + batch, every=0.04)
    time.sleep(1.5)
    servers.stop_postgres()
    TALLY.faults.append("postgresql stop/start")
    time.sleep(2.5)
    servers.start()
    dropper.join(timeout=60)
    cucm.wait_archived(len(cucm.dropped))
    _resent(cucm, batch)
    figures = cucm.check()
    assert figures["proxy"].get(503, 0) > 0, figures  # the sidecar said so while it was down
    print(f"cucm-watch-postgresql-restart: {figures}")


def test_sidecar_errors_under_the_watcher(cucm: CucmStage, servers: PrivateServers) -> None:
    """Answers lost after the commit, 5xx and 429 answers, then kill -9 of the sidecar."""
    TALLY.scenarios.append("cucm-watch-sidecar-errors")
    batch = generated_files(120, seed=33, first_seq=3000)
    cucm.watcher.start()
    dropper = _dropper(cucm, fixture_files() + batch, every=0.05)
    time.sleep(0.5)
    for mode, seconds in (("lose", 3.0), (503, 1.0), (500, 1.0), (429, 1.0), ("pass", 0.5)):
        cucm.proxy.mode = mode
        if mode != "pass":
            TALLY.faults.append(f"sidecar answers {mode if mode != 'lose' else 'lost'}")
        time.sleep(seconds)
    kill_sidecar(cucm.sidecar)  # gunicorn's master and its workers
    TALLY.faults.append("kill -9 sidecar")
    time.sleep(1.0)
    cucm.sidecar = start_sidecar(servers.db_url, servers.redis_url, **SIDECAR_ENV)
    cucm.proxy.target = cucm.sidecar.url
    dropper.join(timeout=60)
    cucm.wait_archived(len(cucm.dropped))
    _resent(cucm, batch)
    figures = cucm.check()
    answered = figures["proxy"]
    assert all(answered.get(s, 0) > 0 for s in (502, 503, 500, 429)), answered
    # each file whose answer was lost after its commit came back as a duplicate (and the
    # ten resends): stored and charged once all the same
    assert figures["answers_lost"] >= 3
    assert figures["duplicate_answers"] >= 10 + figures["answers_lost"], figures
    print(f"cucm-watch-sidecar-errors: {figures}")
