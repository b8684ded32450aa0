"""The Lua hook under the real mod_lua, over Debian's LuaSocket, with no Lua configuration."""

from __future__ import annotations

from decimal import Decimal

from e2e.conftest import BLOCK
from e2e.fs_switch import LUA_CONTEXT
from e2e.harness import Harness, Rate, unique


def test_lua_hook_authorizes_and_the_call_is_charged(e2e: Harness) -> None:
    rate = Rate(per_minute="1.20", initial=2, increment=2)
    caller = e2e.caller(balance="2.00", rate=rate, context=LUA_CONTEXT)
    callee = "51" + unique("9")
    log_from = e2e.switch.log_size()
    run = e2e.call(caller, callee, hold_ms=1200)
    assert run.returncode == 0, run.errors
    assert run.kinds() == ["hung_up"]

    [cdr] = e2e.billed_cdrs(caller, 1)
    assert cdr.variables["apolo_result"] == "authorized"
    assert cdr.variables["execute_on_answer"] == f"sched_hangup +{BLOCK - 1} ALLOTTED_TIMEOUT"
    assert cdr.cost == rate.cost(cdr.billusec) == Decimal("0.0400")  # 2 s increments
    assert Decimal(e2e.account(caller.account)["balance"]) == Decimal("2.00") - cdr.cost
    # one hook ran, the Lua one, and it said which transport it used
    uuid = cdr.api["call_uuid"]
    [line] = [x for x in e2e.switch.log_since(log_from).splitlines() if f"[apolo] {uuid}" in x]
    assert f"{caller.user} -> {callee}: authorized (authorized, {BLOCK - 1}s) via luasocket" in line


def test_lua_hook_refuses_without_money(e2e: Harness) -> None:
    caller = e2e.caller(balance="0.00", context=LUA_CONTEXT)
    callee = "51" + unique("9")
    run = e2e.call(caller, callee)
    assert [(o.kind, o.code) for o in run.outcomes] == [("refused", 603)]
    [cdr] = e2e.cdrs_for(callee, 1)
    assert cdr.variables["apolo_result"] == "denied"
    assert cdr.variables["apolo_reason"] == "insufficient_balance"
    assert e2e.uas.invites_for(callee) == 0
