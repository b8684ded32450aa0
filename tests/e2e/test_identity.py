"""Who pays, on the real switch (issue #11): a caller who forges the billing header and another
account's caller ID in its INVITE is still billed as the user FreeSWITCH authenticated, on the
Python hook, the Lua hook and the xml_curl route alike; the forged account is never touched."""

from __future__ import annotations

from decimal import Decimal

import pytest

from e2e.conftest import CURL_CONTEXT
from e2e.fs_switch import LUA_CONTEXT
from e2e.harness import Harness, Rate, unique


@pytest.mark.parametrize("context", ["default", LUA_CONTEXT, CURL_CONTEXT])
def test_forged_header_and_caller_id_never_move_the_charge(e2e: Harness, context: str) -> None:
    rate = Rate()
    victim, victim_ani = unique("7"), unique("8")
    plan = e2e.seed.plan([(rate.prefix, rate.per_minute)], initial_increment=1, increment=1)
    e2e.seed.account(victim, balance="50.00", plan=plan, anis=[victim_ani])
    attacker = e2e.caller(balance="0.00", rate=rate, context=context)
    callee = "51" + unique("9")

    run = e2e.call(
        attacker, callee, from_user=victim_ani,
        headers=(f"X-Billing-Account: {victim}", f"P-Charge-Info: <sip:{victim}@evil.example>"),
    )  # fmt: skip
    assert [(o.kind, o.code) for o in run.outcomes] == [("refused", 603)], run.errors
    assert e2e.uas.invites_for(callee) == 0

    [cdr] = e2e.cdrs_for(callee, 1)
    assert cdr.variables["sip_h_X-Billing-Account"] == victim  # the forgery reached FreeSWITCH
    assert cdr.variables["apolo_result"] == "denied"
    assert cdr.variables["apolo_reason"] == "insufficient_balance"
    assert cdr.variables["apolo_account"] == attacker.account
    assert cdr.api["account"] in (None, attacker.account)
    assert Decimal(cdr.api["cost"]) == 0

    robbed = e2e.account(victim)
    assert Decimal(robbed["balance"]) == Decimal("50.00")
    assert Decimal(robbed["reserved"]) == 0
    assert e2e.ledger_charges(victim) == []
    e2e.idle()
