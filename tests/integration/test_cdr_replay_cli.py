"""``apolo cdr replay`` on real err-log-dir files, against a real sidecar (gunicorn + DB)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from click.testing import CliRunner, Result
from conftest import FS_AUTH, ROOT, call_body, free_port
from fixtures_path import FS_FIXTURES, read_http_capture

from sidecar.cli.cdr_cmd import wire_request
from sidecar.cli.main import cli
from sidecar.freeswitch.xml_cdr import CT_BASE64, CT_TEXTXML, decode_post, parse_post

CDR = FS_FIXTURES / "xml_cdr"
SPOOL_DIRS = (CDR / "plaintext" / "err_log_dir", CDR / "urlencoded" / "err_log_dir")
SPOOLED = sorted(p for d in SPOOL_DIRS for p in d.glob("*.cdr.xml"))
# what FreeSWITCH posted for these very CDRs before it gave up and spooled them
CAPTURES = sorted(CDR.glob("*/retries_*/*_attempt_1.http"))


def spool_copy(dest: Path, files: list[Path] = SPOOLED) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, dest / path.name)  # copyfile: the fixtures are read-only
    return dest


def authorize_spooled(post: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Authorize the calls of the spooled CDRs from the test PBX, as the sidecar did before
    their CDRs could not reach it: the replay settles those reservations. (The captured
    loopback calls carry no identity of their own, so nobody would pay for them otherwise.)"""
    inbound = 0
    for path in SPOOLED:
        query, content_type, body = wire_request(path.name, path.read_bytes())
        record = parse_post(decode_post(content_type, body, query))
        if record.direction == "inbound":
            answer = post(call_body(record.uuid, record.caller, record.callee))
            assert answer["authorized"] is True, answer
            inbound += 1
    return inbound


def uuid_of(path: Path) -> str:
    return path.name.removesuffix(".cdr.xml").removeprefix("a_")


def replay(directory: Path, url: str, password: str, *extra: str) -> Result:
    env = {"APOLO_FS_PASSWORD": password, "APOLO_FS_USER": "freeswitch"}
    args = ["cdr", "replay", str(directory), "--url", url, *extra]
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def cdr_counts(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as c:
        rows = c.execute("SELECT call_uuid, count(*) FROM cdrs GROUP BY call_uuid").fetchall()
    return {uuid: n for uuid, n in rows}


def money(db_url: str, number: str) -> tuple[Decimal, Decimal, Decimal]:
    """(balance, sum of ledger rows, sum of the costs of its CDRs) of one account."""
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT a.balance,"
            " (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.account_id = a.id),"
            " (SELECT coalesce(sum(cost), 0) FROM cdrs d WHERE d.account_id = a.id)"
            " FROM accounts a WHERE a.number = %s",
            (number,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


# --- what goes on the wire (no sidecar needed) ------------------------------------------


def test_fixture_files_match_their_captures() -> None:
    assert len(SPOOLED) == 6 and len(CAPTURES) >= 6


@pytest.mark.parametrize("path", SPOOLED, ids=lambda p: p.parent.parent.name + "/" + p.name)
def test_wire_request_is_what_freeswitch_posted(path: Path) -> None:
    captured = {read_http_capture(c).query["uuid"][0]: read_http_capture(c) for c in CAPTURES}
    query, content_type, body = wire_request(path.name, path.read_bytes())
    cap = captured[query]  # same uuid query, a_ prefix included (or not) as FreeSWITCH sent it
    assert query == path.name.removesuffix(".cdr.xml")
    if content_type == CT_TEXTXML:  # encode=false file: sent as text/xml, same document
        assert cap.content_type == "application/x-www-form-plaintext"
        assert body == path.read_bytes()
    else:  # encode=true file: byte for byte the body FreeSWITCH posted
        assert (content_type, body) == (cap.content_type, cap.body)
    sent = decode_post(content_type, body, query)
    assert sent.xml == decode_post(cap.content_type, cap.body, query).xml


def test_wire_request_base64_file() -> None:
    xml = (CDR / "textxml" / "answered_uuid_kill_loopback_b_inbound.xml").read_bytes()
    name = "a_e4bfb5cb-7d32-4615-b062-85e4405b846b.cdr.xml"
    query, content_type, body = wire_request(name, base64.b64encode(xml) + b"\n")
    assert (query, content_type) == ("a_e4bfb5cb-7d32-4615-b062-85e4405b846b", CT_BASE64)
    assert decode_post(content_type, body, query).xml == xml


# --- against the live sidecar -------------------------------------------------------------


@pytest.mark.integration
def test_replay_posts_each_file_once(tmp_path: Path, seed, live_sidecar, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="200.00")
    spool = spool_copy(tmp_path / "spool")

    def post(body: dict[str, Any]) -> dict[str, Any]:
        url = f"{live_sidecar.url}/v1/authorize"
        return requests.post(url, json=body, auth=FS_AUTH, timeout=10).json()  # type: ignore[no-any-return]

    assert authorize_spooled(post) == 3

    result = replay(spool, live_sidecar.url, live_sidecar.fs_password)
    assert result.exit_code == 0, result.output
    assert "accepted 6, duplicates 0, rejected 0, failed 0" in result.output
    assert list(spool.iterdir()) == []
    assert cdr_counts(db_url) == {uuid_of(p): 1 for p in SPOOLED}
    balance, ledger, costs = money(db_url, "100001")
    assert costs > 0  # the inbound legs settled their reservations
    assert balance == ledger == Decimal("200.00") - costs

    # FreeSWITCH spooled them again (or an operator restored a backup): nothing new
    spool_copy(spool)
    again = replay(spool, live_sidecar.url, live_sidecar.fs_password)
    assert again.exit_code == 0, again.output
    assert "accepted 0, duplicates 6, rejected 0, failed 0" in again.output
    assert list(spool.iterdir()) == []
    assert cdr_counts(db_url) == {uuid_of(p): 1 for p in SPOOLED}
    assert money(db_url, "100001") == (balance, ledger, costs)


@pytest.mark.integration
def test_keep_leaves_accepted_files(tmp_path: Path, seed, live_sidecar) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50.00")
    spool = spool_copy(tmp_path / "spool", SPOOLED[:2])
    result = replay(spool, live_sidecar.url, live_sidecar.fs_password, "--keep")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in spool.iterdir()) == sorted(p.name for p in SPOOLED[:2])


@pytest.mark.integration
def test_bad_files_go_to_rejected(tmp_path: Path, seed, live_sidecar, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50.00")
    good = SPOOLED[0]
    spool = spool_copy(tmp_path / "spool", [good])
    truncated = "a_11111111-2222-4333-8444-555555555555.cdr.xml"
    (spool / truncated).write_bytes(good.read_bytes()[:700])  # the sidecar answers 400
    (spool / "not-a-uuid.cdr.xml").write_bytes(good.read_bytes())  # refused before posting
    (spool / "notes.txt").write_text("not a CDR file")

    result = replay(spool, live_sidecar.url, live_sidecar.fs_password)
    assert result.exit_code == 1
    assert "accepted 1, duplicates 0, rejected 2, failed 0" in result.output
    rejected = spool / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == sorted(
        [truncated, truncated + ".reason", "not-a-uuid.cdr.xml", "not-a-uuid.cdr.xml.reason"]
    )
    assert (rejected / truncated).read_bytes() == good.read_bytes()[:700]  # moved, intact
    assert "HTTP 400" in (rejected / (truncated + ".reason")).read_text()
    assert "uuid" in (rejected / "not-a-uuid.cdr.xml.reason").read_text()
    assert sorted(p.name for p in spool.iterdir()) == ["notes.txt", "rejected"]
    assert cdr_counts(db_url) == {uuid_of(good): 1}


@pytest.mark.integration
def test_wrong_password_keeps_every_file(tmp_path: Path, live_sidecar) -> None:  # type: ignore[no-untyped-def]
    spool = spool_copy(tmp_path / "spool")
    result = replay(spool, live_sidecar.url, "wrong-password")
    assert result.exit_code == 1
    assert "failed 1" in result.output and "5 file(s) not tried" in result.output
    assert sorted(p.name for p in spool.iterdir()) == sorted(p.name for p in SPOOLED)


@pytest.mark.integration
def test_sidecar_down_leaves_files_in_place(tmp_path: Path) -> None:
    spool = spool_copy(tmp_path / "spool")
    env = {**os.environ, "APOLO_FS_PASSWORD": "irrelevant"}
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "cdr", "replay", str(spool), "--url", url],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "accepted 0, duplicates 0, rejected 0, failed 5" in proc.stdout
    assert "1 file(s) not tried" in proc.stdout
    assert "ConnectionError" in proc.stderr
    assert sorted(p.name for p in spool.iterdir()) == sorted(p.name for p in SPOOLED)
