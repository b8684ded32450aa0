"""CUCM numbers through a cluster's normalization rules: access codes 9011 / 011 on
callees, callers written as +E.164 while the account holds the 10-digit number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from api.test_cucm_api import _by_uuid, _post, cucm_client  # noqa: F401 - fixture by name
from conftest import Seed
from unit.cucm.cucm_rows import answered_row, siete

CLUSTER = "cucmOHSUtest"  # the siete fixture's globalCallId_ClusterID


def test_cluster_rules_normalize_callees_and_find_the_caller(
    cucm_client,  # noqa: F811 - the fixture imported above
    seed: Seed,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APOLO_CUCM_BILLABLE_DEVICES", "^SEP")
    admin = {"Authorization": f"Bearer {seed.token('admin')}"}
    rules = [
        {"direction": "callee", "strip": "9011", "min_length": 8, "max_length": 20},
        {"direction": "callee", "strip": "011", "min_length": 7, "max_length": 19},
        {"direction": "callee", "strip": "9", "add": "1", "min_length": 11, "max_length": 11},
        {"direction": "caller", "strip": "+"},
        {"direction": "caller", "add": "1", "min_length": 10, "max_length": 10},
    ]
    for rule in rules:
        resp = cucm_client.post("/v1/number-rules", json={"cucm_cluster": CLUSTER, **rule},
                                headers=admin)  # fmt: skip
        assert resp.status_code == 201, resp.get_json()
    plan = seed.plan([("44", "0.60"), ("1503", "0.06")])
    seed.account("5034401001", balance="10.00", plan=plan, anis=["5034401001"])
    table = siete()
    base = answered_row(table)  # 11 s talk
    calls = {
        "intl": table.fresh(base, callingPartyNumber="+15034401001",
                            finalCalledPartyNumber="9011442079460000"),
        "no-access-code": table.fresh(base, callingPartyNumber="+15034401001",
                                      finalCalledPartyNumber="011442079460000"),
        "national": table.fresh(base, callingPartyNumber="5034401001",
                                finalCalledPartyNumber="95033466593"),
    }  # fmt: skip
    resp = _post(cucm_client, seed.token("switch"), "cdr_cucmOHSUtest_02_202604180000_1",
                 table.to_bytes(list(calls.values())))  # fmt: skip
    assert resp.status_code in (200, 201), resp.get_json()
    pkid = {name: table.value(row, "pkid") for name, row in calls.items()}
    intl = _by_uuid(seed.url, pkid["intl"])
    assert (intl["caller"], intl["caller_normalized"]) == ("+15034401001", "15034401001")
    assert (intl["callee"], intl["destination"]) == ("9011442079460000", "442079460000")
    assert intl["billing_status"] == "charged" and intl["cost"] == Decimal("0.6000")
    assert intl["rate_prefix"] == "44" and intl["spans"][0]["seconds"] == 60
    plain = _by_uuid(seed.url, pkid["no-access-code"])
    assert plain["destination"] == "442079460000" and plain["billing_status"] == "charged"
    national = _by_uuid(seed.url, pkid["national"])
    assert national["destination"] == "15033466593" and national["rate_prefix"] == "1503"
    assert national["caller_normalized"] == "15034401001"
    assert seed.balance("5034401001")["balance"] == "8.7400"  # 0.60 + 0.60 + 0.06
