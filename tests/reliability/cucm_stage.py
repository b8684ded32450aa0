"""The stage of the CUCM intake scenarios: ``apolo cucm watch`` posting to a sidecar.

The watcher is its own process (killed with SIGKILL in a scenario) and posts through a
``FaultProxy`` in front of the sidecar, so the sidecar can be answered for, restarted on a
new port, or have its answers lost. The files are the real CUCM fixtures: the four files
byte for byte, and CDR files rebuilt from the real CUCM 14 file under new pkids and call
durations (``unit.cucm.cucm_rows``), dropped the way an SFTP client does (``_name`` then
rename). ``check`` proves every record stored once and charged once.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from conftest import ROOT, SidecarProcess
from psycopg.rows import dict_row
from unit.cucm.cucm_rows import (
    DAMHAU_CDR,
    DAMHAU_CMR,
    SIETE_CDR,
    SIETE_CDR_NAME,
    SIETE_CMR,
    SIETE_CMR_NAME,
    Table,
    answered_row,
    read_table,
    siete,
)

from reliability.faults import kill_process, stop_process
from reliability.http_faults import FaultProxy
from reliability.tally import TALLY
from sidecar.rating import Rate, call_cost

FAC_KEY = "reliability-fac-key-0123456789"
RPM = "1.200000"
INITIAL = Decimal("5000.00")
SIDECAR_ENV = {
    "APOLO_FAC_KEY": FAC_KEY,
    "APOLO_CUCM_BILLABLE_DEVICES": "^SEP",  # the fixture's phones are the billed devices
    "APOLO_DB_TIMEOUT": "1.0",
}


@dataclass(frozen=True)
class CucmFile:
    name: str
    data: bytes
    pkids: frozenset[str]
    charged: dict[str, int]  # pkid -> billed duration of the rows the caller's account pays

    @property
    def key(self) -> tuple[str, str]:
        return self.name, hashlib.sha256(self.data).hexdigest()

    @property
    def kind(self) -> str:
        return self.name[:3]


def _pkids(table: Table, rows: list[list[str]] | None = None) -> frozenset[str]:
    return frozenset(table.value(r, "pkid") for r in (table.rows if rows is None else rows))


def fixture_files() -> list[CucmFile]:
    """The four real files, byte for byte (the CUCM 14 ones under a CUCM-style name)."""
    cdr = siete()
    talk = answered_row(cdr)
    return [
        CucmFile(SIETE_CDR_NAME, SIETE_CDR.read_bytes(), _pkids(cdr),
                 {cdr.value(talk, "pkid"): int(cdr.value(talk, "duration"))}),
        CucmFile(SIETE_CMR_NAME, SIETE_CMR.read_bytes(), _pkids(read_table(SIETE_CMR)), {}),
        # anonymised numbers: no account matches them, stored unrated
        CucmFile(DAMHAU_CDR.name, DAMHAU_CDR.read_bytes(), _pkids(read_table(DAMHAU_CDR)), {}),
        CucmFile(DAMHAU_CMR.name, DAMHAU_CMR.read_bytes(), _pkids(read_table(DAMHAU_CMR)), {}),
    ]  # fmt: skip


def generated_files(count: int, seed: int, first_seq: int) -> list[CucmFile]:
    """CDR files of the real CUCM 14 file, each with new pkids and its own talk time."""
    table = siete()
    talk = answered_row(table)
    connect = int(table.value(talk, "dateTimeConnect"))
    rng = random.Random(seed)
    files = []
    for i in range(count):
        duration = rng.randint(1, 900)
        rows = [
            table.fresh(r, duration=duration, dateTimeDisconnect=connect + duration)
            if r is talk else table.fresh(r)
            for r in table.rows
        ]  # fmt: skip
        billed = table.value(rows[table.rows.index(talk)], "pkid")
        name = f"cdr_cucmOHSUtest_02_202504181633_{first_seq + i}"
        files.append(CucmFile(name, table.to_bytes(rows), _pkids(table, rows), {billed: duration}))
    return files


def generated_cmrs(count: int, first_seq: int) -> list[CucmFile]:
    table = read_table(SIETE_CMR)
    files = []
    for i in range(count):
        rows = [table.fresh(r) for r in table.rows]
        name = f"cmr_cucmOHSUtest_02_202504181633_{first_seq + i}"
        files.append(CucmFile(name, table.to_bytes(rows), _pkids(table, rows), {}))
    return files


@dataclass
class WatchProcess:
    """``apolo cucm watch DIR`` as an operator runs it."""

    directory: Path
    url: str
    token: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar.cli", "cucm", "watch", str(self.directory),
                 "--url", self.url, "--settle", "0.3", "--poll", "0.2", "--max-backoff", "1"],
                env={**os.environ, "APOLO_CUCM_TOKEN": self.token}, cwd=ROOT,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        kill_process(self.proc, self.log)

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class CucmStage:
    db_url: str
    drop_dir: Path
    sidecar: SidecarProcess
    proxy: FaultProxy
    watcher: WatchProcess
    caller: str
    dropped: list[CucmFile] = field(default_factory=list)

    @property
    def archive(self) -> Path:
        return self.drop_dir / "archive"

    def drop(self, files: list[CucmFile]) -> None:
        """As an SFTP client delivers: write under a temporary "_" name, then rename."""
        for f in files:
            tmp = self.drop_dir / f"_{f.name}"
            tmp.write_bytes(f.data)
            tmp.rename(self.drop_dir / f.name)
            self.dropped.append(f)

    def archived(self) -> int:
        return sum(1 for _ in self.archive.iterdir()) if self.archive.exists() else 0

    def pending(self) -> list[str]:
        return sorted(p.name for p in self.drop_dir.iterdir() if p.is_file())

    def wait_archived(self, count: int, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.archived() < count:
            assert time.monotonic() < deadline, (
                f"{self.archived()} of {count} archived; pending {self.pending()[:5]};"
                f" log: {self.watcher.log.read_text()[-2000:]}"
            )
            time.sleep(0.05)

    def check(self, initial: Decimal = INITIAL) -> dict[str, Any]:
        """Every file archived and stored once, every record once, every call charged once."""
        self.wait_archived(len(self.dropped))
        assert self.pending() == [], self.pending()
        assert not (self.drop_dir / "failed").exists(), sorted((self.drop_dir / "failed").iterdir())
        for f in self.dropped:  # each delivery archived intact, resends under a suffix
            copies = [p for p in self.archive.glob(f"{f.name}*") if p.name.split(".")[0] == f.name]
            assert any(p.read_bytes() == f.data for p in copies), f.name
        with psycopg.connect(self.db_url, row_factory=dict_row) as c:
            files = c.execute("SELECT name, content_sha256 FROM cucm_files").fetchall()
            cdr_pkids = [str(r["pkid"]) for r in c.execute("SELECT pkid FROM cucm_cdrs")]
            cmr_pkids = [str(r["pkid"]) for r in c.execute("SELECT pkid FROM cucm_cmrs")]
            cdr_rows = c.execute(
                "SELECT call_uuid, count(*) AS n FROM cdrs WHERE source = 'cucm' GROUP BY call_uuid"
            ).fetchall()
            charges = c.execute(
                "SELECT d.call_uuid, count(*) AS n, -sum(l.amount) AS total FROM ledger l"
                " JOIN cdrs d ON d.id = l.cdr_id WHERE l.kind = 'call_charge' GROUP BY d.call_uuid"
            ).fetchall()
            money = c.execute(
                "SELECT a.balance, (SELECT sum(amount) FROM ledger l WHERE l.account_id = a.id)"
                " AS ledger FROM accounts a WHERE a.number = %s",
                (self.caller,),
            ).fetchone()
            rate = c.execute("SELECT * FROM rates").fetchone()
        assert money is not None and rate is not None
        keys = {f.key for f in self.dropped}
        stored_keys = [(r["name"], r["content_sha256"]) for r in files]
        want_cdr = set().union(*(f.pkids for f in self.dropped if f.kind == "cdr"))
        want_cmr = set().union(*(f.pkids for f in self.dropped if f.kind == "cmr"))
        billed: dict[str, int] = {}
        for f in self.dropped:
            billed.update(f.charged)
        lost = (want_cdr - set(cdr_pkids)) | (want_cmr - set(cmr_pkids))
        doubled = [r["call_uuid"] for r in cdr_rows if r["n"] > 1]
        doubled += [r["call_uuid"] for r in charges if r["n"] > 1]
        TALLY.cdrs += len(cdr_pkids)
        TALLY.calls += len(charges)
        TALLY.lost += len(lost)
        TALLY.double_charged += len(doubled)
        assert not lost, f"{len(lost)} CUCM records lost, e.g. {sorted(lost)[:3]}"
        assert not doubled, f"stored or charged twice: {doubled[:3]}"
        assert sorted(stored_keys) == sorted(keys), "a file stored twice, or not at all"
        assert sorted(cdr_pkids) == sorted(want_cdr) and sorted(cmr_pkids) == sorted(want_cmr)
        assert len(cdr_rows) == len(want_cdr)
        r = Rate(rate["id"], rate["prefix"], rate["name"], rate["rate_per_minute"],
                 rate["connection_fee"], rate["initial_increment"], rate["increment"],
                 rate["effective_start"], None)  # fmt: skip
        expected = {f"cucm:{p}": call_cost(r, s) for p, s in billed.items()}
        assert {row["call_uuid"]: row["total"] for row in charges} == expected
        total = sum(expected.values(), Decimal(0))
        assert money["balance"] == initial - total == money["ledger"]
        answers = self.watcher.log.read_text()
        return {
            "duplicate_answers": len(re.findall(r'^archived .*"duplicate":\s*true', answers, re.M)),
            "answers_lost": len(self.proxy.lost),
            "files": len(self.dropped),
            "distinct_files": len(keys),
            "cdr_records": len(cdr_pkids),
            "cmr_records": len(cmr_pkids),
            "charged": len(charges),
            "proxy": dict(self.proxy.answered),
        }
