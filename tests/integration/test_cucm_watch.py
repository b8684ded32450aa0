"""``apolo cucm watch`` against real gunicorn sidecars, PostgreSQL and the file system.

The sidecar runs the app with the CUCM blueprints (registered by ``cucm_app`` below until
the app registers them itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from conftest import FS_PASSWORD, FS_USER, ROOT, Seed, free_port
from psycopg.rows import dict_row

from sidecar.cli.cucm_cmd import Watcher

pytestmark = pytest.mark.integration
FAC_KEY = "watch-test-fac-key-0123456789"
RPM = "1.200000"


def cucm_app():  # type: ignore[no-untyped-def]
    """WSGI factory: the sidecar app plus the CUCM blueprints."""
    from sidecar import create_app
    from sidecar.api import cucm, fac

    app = create_app()
    for module in (cucm, fac):
        if module.bp.name not in app.blueprints:
            app.register_blueprint(module.bp)
    return app


class Sidecar:
    def __init__(self, db_url: str, redis_url: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "APOLO_FS_USER": FS_USER,
            "APOLO_FS_PASSWORD": FS_PASSWORD,
            "APOLO_FAC_KEY": FAC_KEY,
            "APOLO_CUCM_BILLABLE_DEVICES": "^SEP",
            "APOLO_LOG_LEVEL": "WARNING",
        }
        (ROOT / ".data").mkdir(exist_ok=True)
        self.log = open(ROOT / ".data" / f"sidecar-cucm-{port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--worker-class", "gthread", "--threads", "4",
             "--pythonpath", f"{ROOT / 'tests' / 'integration'},{ROOT / 'tests'}",
             "test_cucm_watch:cucm_app()"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"sidecar exited; see {self.log.name}"
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code in (200, 503):
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("sidecar did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def sidecars(db_url: str, redis_url: str) -> Iterator[Callable[[int], Sidecar]]:
    started: list[Sidecar] = []

    def start(port: int) -> Sidecar:
        sidecar = Sidecar(db_url, redis_url, port)
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        if sidecar.proc.poll() is None:
            sidecar.stop()


@pytest.fixture
def billing(seed: Seed, db_url: str) -> dict[str, Any]:
    from unit.cucm.cucm_rows import answered_row, siete

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE cucm_files CASCADE")
    table = siete()
    talk = answered_row(table)
    caller = table.value(talk, "callingPartyNumber")
    plan = seed.plan([(table.value(talk, "finalCalledPartyNumber")[:4], RPM)])
    seed.account(caller, balance="50.00", plan=plan)
    return {"table": table, "talk": talk, "caller": caller, "token": seed.token("switch")}


def _file(billing: dict[str, Any], duration: int) -> bytes:
    """The real file with new pkids, its answered call lasting ``duration`` seconds."""
    table, talk = billing["table"], billing["talk"]
    connect = int(table.value(talk, "dateTimeConnect"))
    rows = [
        table.fresh(r, duration=duration, dateTimeDisconnect=connect + duration)
        if r is talk else table.fresh(r)
        for r in table.rows
    ]  # fmt: skip
    return table.to_bytes(rows)


def _drop(directory: Path, name: str, data: bytes) -> None:
    """As an SFTP client does it: write under a temporary "_" name, then rename."""
    tmp = directory / f"_{name}"
    tmp.write_bytes(data)
    tmp.rename(directory / name)


def _watch(
    directory: Path, url: str, token: str, *extra: str, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sidecar.cli.cucm_cmd", "watch", str(directory), "--url", url,
         "--settle", "0.3", "--poll", "0.2", "--max-backoff", "1", *extra],
        env={**os.environ, "APOLO_CUCM_TOKEN": token}, cwd=ROOT,
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _db(db_url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


def _expected_cost(db_url: str, seconds: list[int]) -> Decimal:
    from sidecar.rating import Rate, call_cost

    r = _db(db_url, "SELECT * FROM rates")[0]
    rate = Rate(r["id"], r["prefix"], r["name"], r["rate_per_minute"], r["connection_fee"],
                r["initial_increment"], r["increment"], r["effective_start"], None)  # fmt: skip
    return sum((call_cost(rate, s) for s in seconds), Decimal(0))


def test_the_listener_survives_sidecar_downtime_and_loses_nothing(
    tmp_path: Path, billing: dict[str, Any], seed: Seed, sidecars, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    drop = tmp_path / "drop"
    drop.mkdir()
    port = free_port()
    sidecar = sidecars(port)
    log = tmp_path / "watch.log"
    watcher = _watch(drop, sidecar.url, billing["token"], log=log)
    try:
        durations = [11, 75, 130, 61]
        names = [f"cdr_cucmOHSUtest_02_2025041816{30 + i}_{100 + i}" for i in range(4)]
        files = {n: _file(billing, d) for n, d in zip(names, durations, strict=True)}
        _drop(drop, names[0], files[names[0]])
        _wait_for(lambda: (drop / "archive" / names[0]).exists(), 20, "the first file")

        sidecar.stop()
        _drop(drop, names[1], files[names[1]])
        grower = drop / names[2]  # CUCM still writing: taken only once it stops growing
        half = len(files[names[2]]) // 2
        grower.write_bytes(files[names[2]][:half])
        time.sleep(0.5)
        with grower.open("ab") as out:
            out.write(files[names[2]][half:])
        _drop(drop, names[3], files[names[3]])
        time.sleep(2.5)  # several back-off rounds against a dead sidecar
        assert watcher.poll() is None, log.read_text()
        assert sorted(p.name for p in drop.iterdir() if p.is_file()) == sorted(names[1:])
        assert not (drop / "failed").exists()

        sidecars(port)  # back on the same address
        _wait_for(
            lambda: all((drop / "archive" / n).exists() for n in names), 30, "every file archived"
        )
        _drop(drop, names[0], files[names[0]])  # CUCM's resend of a delivered file
        _wait_for(lambda: (drop / "archive" / f"{names[0]}.1").exists(), 20, "the resend")
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=15) == 0, log.read_text()

    for name in names:
        assert (drop / "archive" / name).read_bytes() == files[name]
    rows = _db(db_url, "SELECT count(*) AS n FROM cucm_cdrs")[0]["n"]
    assert rows == len(names) * len(billing["table"].rows)
    charges = _db(db_url, "SELECT amount FROM ledger WHERE kind = 'call_charge'")
    assert len(charges) == len(names)
    expected = _expected_cost(db_url, durations)
    assert -sum(c["amount"] for c in charges) == expected
    assert Decimal(seed.balance(billing["caller"])["balance"]) == Decimal("50.00") - expected
    assert "retry" in log.read_text()


def test_once_restart_pickup_and_permanent_failures(
    tmp_path: Path, billing: dict[str, Any], sidecars, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    drop = tmp_path / "drop"
    drop.mkdir()
    port = free_port()
    log = tmp_path / "watch.log"
    committed = _file(billing, 42)
    good = _file(billing, 90)
    table = billing["table"]
    bad_rows = [table.changed(r, duration="9O") for r in table.rows]
    _drop(drop, "cdr_cucmOHSUtest_02_202504181630_1", committed)
    _drop(drop, "cdr_cucmOHSUtest_02_202504181631_2", good)
    _drop(drop, "cdr_cucmOHSUtest_02_202504181632_3", table.to_bytes(bad_rows))
    (drop / "_cdr_cucmOHSUtest_02_202504181633_4").write_bytes(good[:100])

    # the sidecar is down: --once gives up with 1 and touches nothing
    down = _watch(drop, f"http://127.0.0.1:{port}", billing["token"], "--once", log=log)
    assert down.wait(timeout=60) == 1
    assert len([p for p in drop.iterdir() if p.is_file()]) == 4

    sidecar = sidecars(port)
    # a delivery committed before a crash, whose file was never moved
    resp = requests.post(
        sidecar.url + "/cucm/cdr", data=committed,
        headers={"Authorization": f"Bearer {billing['token']}",
                 "X-Apolo-File-Name": "cdr_cucmOHSUtest_02_202504181630_1"},
        timeout=30,
    )  # fmt: skip
    assert resp.status_code == 200 and not resp.json()["duplicate"]
    once = _watch(drop, sidecar.url, billing["token"], "--once", log=log)
    assert once.wait(timeout=60) == 0, log.read_text()

    assert sorted(p.name for p in (drop / "archive").iterdir()) == [
        "cdr_cucmOHSUtest_02_202504181630_1",
        "cdr_cucmOHSUtest_02_202504181631_2",
    ]
    failed = drop / "failed" / "cdr_cucmOHSUtest_02_202504181632_3"
    assert failed.exists()
    reason = (drop / "failed" / f"{failed.name}.reason").read_text()
    assert "HTTP 400" in reason and "line 3" in reason and "duration" in reason
    assert [p.name for p in drop.iterdir() if p.is_file()] == [
        "_cdr_cucmOHSUtest_02_202504181633_4"
    ]
    charges = _db(db_url, "SELECT count(*) AS n FROM ledger WHERE kind = 'call_charge'")[0]["n"]
    assert charges == 2  # the committed file once, the good file once


def test_a_file_is_taken_only_once_it_stopped_growing(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path, "http://127.0.0.1:9", "unused", settle_seconds=0.4)
    growing = tmp_path / "cdr_c_1_202001010000_1"
    growing.write_bytes(b"a")
    (tmp_path / "_cdr_c_1_202001010000_2").write_bytes(b"b")
    (tmp_path / "archive").mkdir()
    assert watcher.pending() == ([], 1)
    time.sleep(0.25)
    growing.write_bytes(b"ab")
    assert watcher.pending() == ([], 1)
    time.sleep(0.25)
    assert watcher.pending() == ([], 1)  # unchanged, but not yet for 0.4 s
    time.sleep(0.25)
    assert watcher.pending() == ([growing], 0)


def test_parallel_deliveries_of_one_file_charge_once(
    billing: dict[str, Any], sidecars, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    sidecar = sidecars(free_port())
    data = _file(billing, 300)
    headers = {
        "Authorization": f"Bearer {billing['token']}",
        "X-Apolo-File-Name": "cdr_cucmOHSUtest_02_202504181640_7",
    }

    def post(_: int) -> dict[str, Any]:
        resp = requests.post(sidecar.url + "/cucm/cdr", data=data, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert sorted(r["duplicate"] for r in results) == [False] + [True] * 7
    assert len({r["file_id"] for r in results}) == 1
    charges = _db(db_url, "SELECT amount FROM ledger WHERE kind = 'call_charge'")
    assert [-c["amount"] for c in charges] == [_expected_cost(db_url, [300])]


def test_fac_cli_create_list_delete(seed: Seed, db_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sidecar.cli.cucm_cmd import cucm

    seed.account("900100")
    runner = CliRunner()
    env = {"DATABASE_URL": db_url, "APOLO_FAC_KEY": FAC_KEY, "USER": "ops"}
    created = runner.invoke(
        cucm, ["fac", "create", "--account", "900100", "--name", "Lab", "--level", "2"],
        input="7654321\n", env=env,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "*****21" in created.output
    listed = runner.invoke(cucm, ["fac", "list", "--account", "900100"], env=env)
    assert listed.exit_code == 0 and "Lab" in listed.output and "*****21" in listed.output
    fac_id = listed.output.split("\t", 1)[0].strip()
    no_key = runner.invoke(
        cucm, ["fac", "create", "--account", "900100", "--name", "X", "--code", "1234"],
        env={**env, "APOLO_FAC_KEY": ""},
    )  # fmt: skip
    assert no_key.exit_code != 0 and "APOLO_FAC_KEY" in no_key.output
    deleted = runner.invoke(cucm, ["fac", "delete", fac_id], env=env)
    assert deleted.exit_code == 0, deleted.output
    assert runner.invoke(cucm, ["fac", "delete", fac_id], env=env).exit_code != 0
    audit = _db(
        db_url, "SELECT actor, action FROM audit_log WHERE action LIKE 'fac.%%' ORDER BY id"
    )
    assert audit == [
        {"actor": "cli:ops", "action": "fac.create"},
        {"actor": "cli:ops", "action": "fac.delete"},
    ]
    assert "7654321" not in str(_db(db_url, "SELECT * FROM fac_codes")) + created.output
