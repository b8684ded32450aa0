"""The xml_curl route: mod_xml_curl asks the sidecar for the dialplan of each call.

Callers in the ``apolo_curl`` context (APOLO_DIALPLAN_CONTEXTS) get their dialplan from the
sidecar; that context exists nowhere in the static XML, so a call that bridges there was routed
by the sidecar's answer, and so was one refused with the sidecar's apolo_* variables.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from e2e.conftest import CURL_CONTEXT
from e2e.harness import Harness, Rate, unique


def test_xml_curl_route_bridges_cuts_and_charges(e2e: Harness) -> None:
    rate = Rate(per_minute="0.90", connection_fee="0.0100")
    caller = e2e.caller(balance="0.04", rate=rate, context=CURL_CONTEXT)  # 2 s after the fee
    callee = "51" + unique("9")
    run = e2e.call(caller, callee, hold_ms=10_000)
    assert run.returncode == 0, run.errors
    [outcome] = run.outcomes
    assert outcome.kind == "ended_by_switch"  # the sidecar's execute_on_answer cut it
    assert e2e.uas.invites_for(callee) == 1

    [cdr] = e2e.billed_cdrs(caller, 1)
    raw = etree.fromstring(e2e.raw_xml(cdr.api["call_uuid"], "a").encode())
    [extension] = raw.findall("callflow/extension")
    assert extension.get("name") == "apolo" and raw.findtext("callflow/caller_profile/context") == (
        CURL_CONTEXT
    )
    assert cdr.variables["apolo_result"] == "authorized"
    assert cdr.variables["apolo_max_duration"] == "2"
    assert cdr.api["hangup_cause"] == "ALLOTTED_TIMEOUT"
    assert cdr.api["billed_seconds"] <= 2
    assert cdr.cost == rate.cost(cdr.billusec) <= Decimal("0.04")
    account = e2e.account(caller.account)
    assert Decimal(account["balance"]) == Decimal("0.04") - cdr.cost
    assert Decimal(account["reserved"]) == 0


def test_xml_curl_route_refuses_an_unrated_destination(e2e: Harness) -> None:
    caller = e2e.caller(balance="5.00", context=CURL_CONTEXT)
    callee = "44" + unique("9")
    run = e2e.call(caller, callee)
    assert [(o.kind, o.code) for o in run.outcomes] == [("refused", 603)]
    [cdr] = e2e.cdrs_for(callee, 1)
    assert cdr.variables["apolo_result"] == "denied"
    assert cdr.variables["apolo_reason"] == "no_rate"
    assert cdr.api["hangup_cause"] == "CALL_REJECTED"
    assert e2e.uas.invites_for(callee) == 0
    assert e2e.ledger_charges(caller.account) == []
