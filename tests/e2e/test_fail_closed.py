"""Failing closed on the real switch: the sidecar down, and the hook module missing.

The sidecar-down scenario runs once for the module (one stop and one restart of the
sidecar) and its cases look at it from each side: the calls refused while it was down, and
the CDRs FreeSWITCH spooled meanwhile, replayed with ``apolo cdr replay`` and charged once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import DATA_TABLES, FS_PASSWORD, FS_USER, ROOT, Seed, SidecarProcess

from e2e.conftest import CURL_CONTEXT, restart_sidecar
from e2e.fs_switch import LUA_CONTEXT, FreeSwitch
from e2e.harness import Caller, Harness, cdr_variables, unique, wait_for
from e2e.sipp import UacRun, Uas


def test_missing_hook_module_fails_closed(e2e: Harness) -> None:
    # mod_python3 only logs the failed import and the dialplan goes on: apolo_authorized must
    # refuse to bridge a call no hook has looked at
    caller = e2e.caller(balance="5.00")
    callee = "51" + unique("9")
    shim = e2e.switch.scripts / "apolo_authorize.py"
    moved = shim.with_suffix(".away")
    shim.rename(moved)
    try:
        run = e2e.call(caller, callee)
    finally:
        moved.rename(shim)
    assert [(o.kind, o.code) for o in run.outcomes] == [("refused", 603)]
    [cdr] = e2e.cdrs_for(callee, 1)
    assert "apolo_result" not in cdr.variables  # the hook never ran
    assert cdr.api["hangup_cause"] == "CALL_REJECTED"
    assert e2e.uas.invites_for(callee) == 0
    account = e2e.account(caller.account)
    assert Decimal(account["balance"]) == Decimal("5.00") and account["reservations"] == []


# ------------------------------------------------------------------ the sidecar down


@dataclass
class Outage:
    talking: Caller  # on the phone when the sidecar went away
    python: Caller  # called while it was down, through the Python hook
    lua: Caller  # the same through the Lua hook
    curl: Caller  # the same on the xml_curl route
    callees: dict[str, str]
    runs: dict[str, UacRun] = field(default_factory=dict)
    spooled: dict[str, Path] = field(default_factory=dict)  # "<who>" -> the A leg's file
    spool_copy: Path | None = None


def _call_in_thread(e2e: Harness, caller: Caller, callee: str, **kw: Any) -> threading.Thread:
    result: dict[str, UacRun] = {}
    thread = threading.Thread(target=lambda: result.update(run=e2e.call(caller, callee, **kw)))
    thread.result = result  # type: ignore[attr-defined]
    thread.start()
    return thread


@pytest.fixture(scope="module")
def outage(
    switch: FreeSwitch, uas: Uas, sidecar: SidecarProcess, db_url: str, redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Outage, Harness]]:  # fmt: skip
    with psycopg.connect(db_url, autocommit=True) as c:  # the module's cases share this data
        c.execute(f"TRUNCATE {DATA_TABLES} CASCADE")
    e2e = Harness(switch, uas, sidecar.url, db_url, Seed(db_url), tmp_path_factory.mktemp("outage"))
    shutil.rmtree(switch.cdr_spool, ignore_errors=True)
    switch.cdr_spool.mkdir()
    o = Outage(
        talking=e2e.caller(balance="3.00"),
        python=e2e.caller(balance="3.00"),
        lua=e2e.caller(balance="3.00", context=LUA_CONTEXT),
        curl=e2e.caller(balance="3.00", context=CURL_CONTEXT),
        callees={k: "51" + unique("9") for k in ("talking", "python", "lua", "curl")},
    )
    talk = _call_in_thread(e2e, o.talking, o.callees["talking"], hold_ms=2500)
    wait_for(lambda: switch.channels() >= 2, 10, "the first call to be bridged")
    time.sleep(0.5)
    sidecar.stop()
    try:
        o.runs["python"] = e2e.call(o.python, o.callees["python"])
        o.runs["lua"] = e2e.call(o.lua, o.callees["lua"])
        o.runs["curl"] = e2e.call(o.curl, o.callees["curl"])
        talk.join(30)
        o.runs["talking"] = talk.result["run"]  # type: ignore[attr-defined]
        # mod_xml_cdr: 3 attempts 2 s apart, then the file
        files = wait_for(
            lambda: (f := sorted(switch.cdr_spool.glob("*.cdr.xml"))) and len(f) >= 5 and f,
            30, "5 spooled CDRs (the talking call's two legs, the three refused calls)",
        )  # fmt: skip
        for path in files:
            if not path.name.startswith("a_"):
                continue
            callee = cdr_variables(path.read_bytes()).get("sip_req_user")
            who = next(k for k, v in o.callees.items() if v == callee)
            o.spooled[who] = path
        o.spool_copy = tmp_path_factory.mktemp("spool_copy")
        for path in files:
            shutil.copyfile(path, o.spool_copy / path.name)
    finally:
        restart_sidecar(sidecar, db_url, redis_url)
    yield o, e2e
    e2e.idle()


def replay(sidecar_url: str, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {"APOLO_FS_USER": FS_USER, "APOLO_FS_PASSWORD": FS_PASSWORD, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "cdr", "replay", str(directory), "--url",
         sidecar_url], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_sidecar_down_calls_fail_closed_with_one_code_for_both_hooks(
    outage: tuple[Outage, Harness],
) -> None:
    o, e2e = outage
    for who in ("python", "lua"):
        run = o.runs[who]
        assert [(c.kind, c.code) for c in run.outcomes] == [("refused", 603)], who
        assert e2e.uas.invites_for(o.callees[who]) == 0, who
        variables = cdr_variables(o.spooled[who].read_bytes())
        assert variables["apolo_result"] == "error", who
        assert variables["apolo_reason"] == "sidecar_unavailable", who
        assert variables["apolo_error"] == "connection_refused", who
    # the xml_curl route falls back to the static dialplan, which has no such context
    assert [(c.kind, c.code) for c in o.runs["curl"].outcomes] == [("refused", 404)]
    assert e2e.uas.invites_for(o.callees["curl"]) == 0
    assert "apolo_result" not in cdr_variables(o.spooled["curl"].read_bytes())
    # the call already talking when the sidecar went away was not cut by it
    assert o.runs["talking"].kinds() == ["hung_up"]


def test_spooled_cdrs_are_replayed_and_charged_once(outage: tuple[Outage, Harness]) -> None:
    o, e2e = outage
    spool = e2e.switch.cdr_spool
    talked = cdr_variables(o.spooled["talking"].read_bytes())
    assert talked["apolo_result"] == "authorized" and int(talked["billusec"]) > 2_000_000
    done = replay(e2e.sidecar_url, spool)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted 5" in done.stdout + done.stderr
    assert list(spool.glob("*.cdr.xml")) == []  # each file removed once the sidecar had it

    [cdr] = e2e.billed_cdrs(o.talking, 1)
    assert cdr.billusec == int(talked["billusec"])
    assert cdr.cost == o.talking.rate.cost(cdr.billusec) > 0
    assert e2e.account(o.talking.account)["reserved"] == "0.0000"
    # the same files again (mod_xml_cdr may have posted one after all): nothing more
    assert o.spool_copy is not None
    again = replay(e2e.sidecar_url, o.spool_copy)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "duplicates 5" in again.stdout + again.stderr
    assert len(e2e.ledger_charges(o.talking.account)) == 1
    account = e2e.account(o.talking.account)
    assert Decimal(account["balance"]) == Decimal("3.00") - cdr.cost
    for who in ("python", "lua", "curl"):
        assert e2e.ledger_charges(getattr(o, who).account) == []
        assert e2e.account(getattr(o, who).account)["balance"] == "3.0000"


def test_calls_go_through_again_once_the_sidecar_is_back(outage: tuple[Outage, Harness]) -> None:
    # the Python hook's kept-alive connections died with the old sidecar: it must notice,
    # reconnect and authorize, without FreeSWITCH being restarted
    o, e2e = outage
    callee = "51" + unique("9")
    run = e2e.call(o.python, callee)
    assert run.returncode == 0, run.errors
    assert run.kinds() == ["hung_up"]
    [cdr] = [c for c in e2e.cdrs_for(callee, 2) if c.api["leg"] == "a"]  # and its B leg
    assert cdr.variables["apolo_result"] == "authorized"
    assert cdr.api["account"] == o.python.account
    assert cdr.cost == o.python.rate.cost(cdr.billusec) > 0
