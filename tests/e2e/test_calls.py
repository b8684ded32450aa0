"""Calls through the static dialplan and the mod_python3 hook: charged, cut, refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from conftest import FS_AUTH

from e2e.conftest import BLOCK
from e2e.harness import Harness, Rate, unique


def test_authorized_call_is_charged_once_with_the_exact_cost(e2e: Harness) -> None:
    rate = Rate(per_minute="0.7777", connection_fee="0.0125")
    caller = e2e.caller(balance="5.00", rate=rate)
    callee = "51" + unique("9")
    run = e2e.call(caller, callee, hold_ms=1500)
    assert run.returncode == 0, run.errors
    assert run.kinds() == ["hung_up"]
    assert e2e.uas.invites_for(callee) == 1

    [cdr] = e2e.billed_cdrs(caller, 1)
    assert cdr.variables["apolo_result"] == "authorized"
    assert cdr.variables["accountcode"] == caller.account
    assert cdr.api["account"] == caller.account
    assert cdr.api["billusec"] == cdr.billusec > 1_000_000
    assert cdr.cost == rate.cost(cdr.billusec) > 0
    [charge] = e2e.ledger_charges(caller.account)
    assert Decimal(charge["amount"]) == -cdr.cost

    # mod_xml_cdr posts the same document again when it did not see the 200 (a lost answer)
    resp = requests.post(
        f"{e2e.sidecar_url}/freeswitch/cdr", params={"uuid": f"a_{cdr.api['call_uuid']}"},
        data=e2e.raw_xml(cdr.api["call_uuid"], "a"), headers={"Content-Type": "text/xml"},
        auth=FS_AUTH, timeout=10,
    )  # fmt: skip
    assert resp.status_code == 200 and resp.json()["duplicate"] is True
    assert len(e2e.ledger_charges(caller.account)) == 1
    account = e2e.account(caller.account)
    assert Decimal(account["balance"]) == Decimal("5.00") - cdr.cost
    assert Decimal(account["reserved"]) == 0 and account["reservations"] == []


@pytest.mark.parametrize(
    ("balance", "paid_seconds"),
    [("5.00", BLOCK), ("0.03", 3)],
    ids=["one reservation block", "what the balance buys"],
)
def test_call_is_cut_at_its_paid_time(e2e: Harness, balance: str, paid_seconds: int) -> None:
    caller = e2e.caller(balance=balance)  # 0.60 a minute, per second
    run = e2e.call(caller, "51" + unique("9"), hold_ms=20_000)
    assert run.returncode == 0, run.errors
    [outcome] = run.outcomes
    assert outcome.kind == "ended_by_switch"
    assert outcome.talk is not None and outcome.talk < paid_seconds

    [cdr] = e2e.billed_cdrs(caller, 1)
    assert cdr.api["hangup_cause"] == "ALLOTTED_TIMEOUT"
    assert int(cdr.variables["apolo_max_duration"]) == paid_seconds
    assert cdr.api["billed_seconds"] <= paid_seconds
    assert cdr.cost == caller.rate.cost(cdr.billusec)
    assert cdr.cost <= caller.rate.cost(paid_seconds * 1_000_000) <= Decimal(balance)
    account = e2e.account(caller.account)
    assert Decimal(account["balance"]) == Decimal(balance) - cdr.cost >= 0
    assert Decimal(account["reserved"]) == 0


def test_denied_calls_never_reach_the_far_end(e2e: Harness) -> None:
    cases = {
        "no_rate": (e2e.caller(balance="5.00"), "44" + unique("9")),
        "insufficient_balance": (e2e.caller(balance="0.00"), "51" + unique("9")),
        "account_not_found": (e2e.caller(balance=None), "51" + unique("9")),
    }
    for reason, (caller, callee) in cases.items():
        run = e2e.call(caller, callee)
        assert run.returncode == 0, run.errors
        assert [(o.kind, o.code) for o in run.outcomes] == [("refused", 603)], reason
        [cdr] = e2e.cdrs_for(callee, 1)
        assert cdr.variables["apolo_result"] == "denied", reason
        assert cdr.variables["apolo_reason"] == reason
        assert cdr.api["billing_status"] != "charged" and cdr.cost == 0
        assert "bridge_uuid" not in cdr.variables
    for reason, (caller, callee) in cases.items():
        assert e2e.uas.invites_for(callee) == 0, reason
        if reason != "account_not_found":
            assert e2e.ledger_charges(caller.account) == []
            account = e2e.account(caller.account)
            assert Decimal(account["reserved"]) == 0 and account["reservations"] == []
    assert Decimal(e2e.account(cases["no_rate"][0].account)["balance"]) == Decimal("5.00")


def test_twenty_calls_in_flight_on_one_account_never_overspend(e2e: Harness) -> None:
    # a block (5 s) reserves 0.05: the balance covers 10 blocks, while 20 calls of 2 s (0.03
    # each, 0.60 in all) would overspend it if the reservations raced
    balance = Decimal("0.50")
    caller = e2e.caller(balance=str(balance))
    callee = "51" + unique("9")
    run = e2e.call(caller, callee, calls=20, rate=40, hold_ms=2000)
    assert run.returncode == 0, run.errors
    # a call authorized after another one's charge may get a short reservation and be cut
    answered = [o for o in run.outcomes if o.kind in ("hung_up", "ended_by_switch")]
    refused = [o for o in run.outcomes if o.kind == "refused"]
    assert len(answered) + len(refused) == 20, run.log
    assert refused and all(o.code == 603 for o in refused)
    assert e2e.uas.invites_for(callee) == len(answered)

    cdrs = e2e.cdrs_for(callee, 20 + len(answered))  # A legs, plus the B legs of bridged calls
    a_legs = [c for c in cdrs if c.api["leg"] == "a"]
    charged = [c for c in a_legs if c.api["billing_status"] == "charged"]
    denied = [c for c in a_legs if c.variables.get("apolo_result") == "denied"]
    assert len(charged) == len(answered) and len(denied) == len(refused)
    assert {c.variables["apolo_reason"] for c in denied} == {"insufficient_balance"}
    for cdr in charged:
        assert cdr.cost == caller.rate.cost(cdr.billusec)
        assert cdr.api["billed_seconds"] <= int(cdr.variables["apolo_max_duration"])
    spent = sum((c.cost for c in charged), Decimal(0))
    account = e2e.account(caller.account)
    assert Decimal(account["balance"]) == balance - spent >= 0
    assert len(e2e.ledger_charges(caller.account)) == len(charged)
    assert Decimal(account["reserved"]) == 0 and account["reservations"] == []
