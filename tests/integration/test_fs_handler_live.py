"""The FreeSWITCH hooks (mod_python3 handler, and the Lua twin when Lua is installed) against a
live sidecar (real gunicorn, PostgreSQL, Redis) from tests/conftest.py: ``live_sidecar`` and
``seed``. Only FreeSWITCH itself is stood in for (tests/doubles)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_PBX
from doubles.fs_lua import lua_interpreters, run_lua
from doubles.fs_session import FakeSession, add_fs_scripts_to_path

add_fs_scripts_to_path()
import apolo_authorize  # noqa: E402
import apolo_fs  # noqa: E402

pytestmark = pytest.mark.integration
CALLEE = "51987654321"


def unique_number() -> str:
    return "9" + str(uuid.uuid4().int)[:9]


@pytest.fixture
def hook(live_sidecar: Any) -> Iterator[apolo_fs.Settings]:
    settings = apolo_fs.configure(
        apolo_fs.Settings(url=live_sidecar.url, user=live_sidecar.fs_user,
                          password=live_sidecar.fs_password, timeout_ms=5000)
    )  # fmt: skip
    yield settings
    apolo_fs.configure(apolo_fs.Settings())


def place_call(caller: str, account: str | None = None, **channel: str) -> FakeSession:
    """With ``account``: a directory user FreeSWITCH authenticated, whose accountcode it is.
    Without: a call from the test PBX, whose trunk bills the account of the caller ID."""
    variables = {"caller_id_number": caller, "destination_number": CALLEE, **channel}
    if account:
        variables.update(accountcode=account, sip_authorized="true")
    else:
        variables.update(TEST_PBX)
    session = FakeSession(variables)
    apolo_authorize.handler(session, "")
    return session


def test_authorized_call_gets_a_cutoff_from_the_balance(hook: Any, seed: Any) -> None:
    number = seed.account(unique_number(), balance="0.60", rates=[("51", "0.60")])
    session = place_call(number, account=number)
    v = session.variables
    assert v["apolo_result"] == "authorized", v
    assert v["apolo_reason"] == "authorized"
    assert v["apolo_account"] == number
    assert v["apolo_max_duration"] == "60"  # 0.60 at 0.60/min, 60/60 increments
    assert v["execute_on_answer"] == "sched_hangup +59 ALLOTTED_TIMEOUT"
    assert Decimal(v["apolo_rate"]) == Decimal("0.60")
    assert v["apolo_reservation_id"].isdigit()
    assert session.hangups == []
    assert Decimal(seed.balance(number)["reserved"]) > 0


def test_caller_identified_by_a_trunk_that_trusts_its_caller_id(hook: Any, seed: Any) -> None:
    number = seed.account(unique_number(), balance="1.20", rates=[("51", "0.60")])
    session = place_call(number)
    assert session.variables["apolo_result"] == "authorized", session.variables
    assert session.variables["execute_on_answer"] == "sched_hangup +119 ALLOTTED_TIMEOUT"


def test_a_forged_header_or_accountcode_does_not_pay(hook: Any, seed: Any) -> None:
    payer = seed.account(unique_number(), balance="1000.00")
    caller = seed.account(unique_number(), balance="0.00")
    # from the test PBX (trusts caller IDs, not the billing header); the dialplan copied an
    # accountcode onto an unauthenticated channel: neither names who pays
    session = place_call(caller, **{"sip_h_X-Billing-Account": payer, "accountcode": payer})
    assert session.variables["apolo_reason"] == "insufficient_balance", session.variables
    assert session.variables["apolo_account"] == caller
    assert seed.balance(payer)["reserved"] == "0.0000"
    nobody = FakeSession({"caller_id_number": payer, "destination_number": CALLEE,
                          "sip_h_X-Billing-Account": payer})  # fmt: skip
    apolo_authorize.handler(nobody, "")
    assert nobody.variables["apolo_reason"] == "unidentified_caller"
    assert seed.balance(payer)["reserved"] == "0.0000"


def test_unknown_caller_is_rejected(hook: Any, seed: Any) -> None:
    seed.test_pbx()
    session = place_call(unique_number())
    assert session.variables["apolo_result"] == "denied"
    assert session.variables["apolo_reason"] == "account_not_found"
    assert session.hangups == ["CALL_REJECTED"]
    assert "execute_on_answer" not in session.variables


def test_empty_balance_is_rejected(hook: Any, seed: Any) -> None:
    number = seed.account(unique_number(), balance="0.00")
    session = place_call(number, account=number)
    assert session.variables["apolo_result"] == "denied"
    assert session.variables["apolo_reason"] == "insufficient_balance"
    assert session.hangups == ["CALL_REJECTED"]


def test_keepalive_is_reused_against_gunicorn(hook: Any, seed: Any) -> None:
    number = seed.account(unique_number(), balance="1000.00")  # each call reserves up to 1 h
    for _ in range(5):
        v = place_call(number, account=number).variables
        assert v["apolo_result"] == "authorized", v
    assert len(apolo_fs._client.idle) == 1


def test_closed_port_fails_closed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    apolo_fs.configure(apolo_fs.Settings(url=f"http://127.0.0.1:{port}"))
    try:
        session = place_call("100001", account="100001")
    finally:
        apolo_fs.configure(apolo_fs.Settings())
    assert session.variables["apolo_result"] == "error"
    assert session.variables["apolo_reason"] == "sidecar_unavailable"
    assert session.hangups == ["CALL_REJECTED"]


@pytest.mark.parametrize("lua", lua_interpreters()[:1] or ["none"])
@pytest.mark.parametrize("mode", ["cli", "missing"], ids=["mod_curl", "luasocket"])
def test_lua_twin(live_sidecar: Any, seed: Any, tmp_path: Path, lua: str, mode: str) -> None:
    if lua == "none":
        pytest.skip("no Lua interpreter installed")
    env = {"APOLO_SIDECAR_URL": live_sidecar.url, "APOLO_FS_USER": live_sidecar.fs_user,
           "APOLO_FS_PASSWORD": live_sidecar.fs_password, "APOLO_TIMEOUT_MS": "5000"}  # fmt: skip
    number = seed.account(unique_number(), balance="0.60")
    variables = {"uuid": str(uuid.uuid4()), "caller_id_number": number,
                 "destination_number": CALLEE, "accountcode": number,
                 "sip_authorized": "true"}  # fmt: skip
    r = run_lua(lua, variables, mode=mode, env=env, tmp_dir=tmp_path)
    if r.variables.get("apolo_error") == "no_http_transport":
        pytest.skip("LuaSocket is not installed")
    assert r.variables["apolo_result"] == "authorized", (r.variables, r.logs)
    assert r.variables["execute_on_answer"] == "sched_hangup +59 ALLOTTED_TIMEOUT"
    unknown = {**variables, "uuid": str(uuid.uuid4()), "caller_id_number": unique_number(),
               **TEST_PBX}  # fmt: skip
    del unknown["accountcode"], unknown["sip_authorized"]
    r = run_lua(lua, unknown, mode=mode, env=env, tmp_dir=tmp_path)
    assert r.variables["apolo_reason"] == "account_not_found"
    assert r.hangups == ["CALL_REJECTED"]
