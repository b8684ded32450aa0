"""``apolo cdr replay --direct``: real err-log-dir files straight into the real PostgreSQL.

Same outcome as the HTTP replay (test_cdr_replay_cli.py) on the same files: each CDR stored
once, charged once, the files of a committed batch deleted, bad files moved to rejected/.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import FS_AUTH, ROOT
from test_cdr_replay_cli import SPOOLED, authorize_spooled, cdr_counts, money, spool_copy, uuid_of


def replay_direct(spool: Path, db_url: str, redis_url: str, *extra: str) -> tuple[int, str]:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, "REDIS_URL": redis_url}
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "cdr", "replay", str(spool), "--direct", *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.integration
def test_direct_replay_stores_and_charges_each_cdr_once(
    tmp_path: Path, seed, client, db_url: str, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="200.00")
    spool = spool_copy(tmp_path / "spool")
    assert authorize_spooled(lambda b: client.post("/v1/authorize", json=b, auth=FS_AUTH).json) == 3

    code, out = replay_direct(spool, db_url, redis_url, "--batch", "4", "--jobs", "2")
    assert code == 0, out
    assert "accepted 6, duplicates 0, rejected 0, failed 0 (2 batch(es) committed)" in out
    assert list(spool.iterdir()) == []
    assert cdr_counts(db_url) == {uuid_of(p): 1 for p in SPOOLED}
    balance, ledger, costs = money(db_url, "100001")
    assert costs > 0
    assert balance == ledger == Decimal("200.00") - costs

    spool_copy(spool)  # spooled again: nothing new, whichever path replays it
    code, out = replay_direct(spool, db_url, redis_url)
    assert code == 0, out
    assert "accepted 0, duplicates 6" in out
    assert cdr_counts(db_url) == {uuid_of(p): 1 for p in SPOOLED}
    assert money(db_url, "100001") == (balance, ledger, costs)


@pytest.mark.integration
def test_direct_replay_rejects_bad_files_and_keeps_going(
    tmp_path: Path, seed, db_url: str, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50.00")
    good = SPOOLED[0]
    spool = spool_copy(tmp_path / "spool", [good])
    truncated = "a_11111111-2222-4333-8444-555555555555.cdr.xml"
    (spool / truncated).write_bytes(good.read_bytes()[:700])
    (spool / "notes.txt").write_text("not a CDR file")

    code, out = replay_direct(spool, db_url, redis_url, "--jobs", "1")
    assert code == 1, out
    assert "accepted 1, duplicates 0, rejected 1" in out
    assert sorted(p.name for p in (spool / "rejected").iterdir()) == [
        truncated,
        truncated + ".reason",
    ]
    assert (
        "not a valid mod_xml_cdr spool file"
        in (spool / "rejected" / (truncated + ".reason")).read_text()
    )
    assert sorted(p.name for p in spool.iterdir()) == ["notes.txt", "rejected"]
    assert cdr_counts(db_url) == {uuid_of(good): 1}


@pytest.mark.integration
def test_direct_replay_with_database_down_keeps_every_file(tmp_path: Path, redis_url: str) -> None:
    spool = spool_copy(tmp_path / "spool")
    code, _ = replay_direct(spool, "postgresql://postgres@127.0.0.1:1/nowhere", redis_url)
    assert code != 0
    assert sorted(p.name for p in spool.iterdir()) == sorted(p.name for p in SPOOLED)
