"""CUCM: who is charged. The default billable devices leave internal calls alone; an unknown
Forced Authorization Code is flagged and alerted, never charged by its name. Real rows of the
captured files, with only the columns a case is about changed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from click.testing import CliRunner
from conftest import Seed
from fraud_helpers import alerts, audits, outbox, reset_settings
from test_cucm_api import (
    FAC_KEY,
    GATEWAY,
    RPM,
    _by_uuid,
    _db,
    _fac,
    _post,
    _rate,
)
from test_cucm_api import cucm_client as cucm_client  # a fixture, re-exported
from unit.cucm.cucm_rows import SIETE_CDR_NAME, answered_row, fac_chain, siete

from sidecar.cli.main import cli
from sidecar.rating import call_cost

CALLED = "0051987654321"


@pytest.fixture
def cucm(cucm_client):  # type: ignore[no-untyped-def]
    return cucm_client


def test_internal_devices_are_not_billed_by_default_and_gateways_are(
    cucm, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = siete()
    talk = answered_row(table)
    caller = table.value(talk, "callingPartyNumber")
    plan = seed.plan([("0051", RPM), ("5", RPM)])
    seed.account(caller, balance="5.00", plan=plan)
    devices = {"CSFGWALKER": "not_billed", "TCTPSBCOOPER": "not_billed",
               "Unity-VM-Trunk": "not_billed", "SEPCC8E7148AD29": "not_billed",
               GATEWAY: "charged"}  # fmt: skip
    rows = {d: table.fresh(talk, destDeviceName=d, outpulsedCalledPartyNumber=CALLED)
            for d in devices}  # fmt: skip
    resp = _post(cucm, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes(list(rows.values())))
    assert resp.status_code == 200, resp.get_json()
    stored = {d: _by_uuid(db_url, table.value(r, "pkid")) for d, r in rows.items()}
    assert {d: c["billing_status"] for d, c in stored.items()} == devices
    for device in ("CSFGWALKER", "TCTPSBCOOPER", "Unity-VM-Trunk"):
        assert (
            f"destDeviceName {device!r} is not a billable device" in stored[device]["billing_note"]
        )
    expected = call_cost(_rate(seed, plan), int(table.value(talk, "duration")))
    assert Decimal(seed.balance(caller)["balance"]) == Decimal("5.00") - expected
    # what an operator runs to see the devices stored calls went to, and which are billed
    monkeypatch.setenv("DATABASE_URL", db_url)
    listed = CliRunner().invoke(cli, ["cucm", "devices"])
    assert listed.exit_code == 0, listed.output
    assert sorted(listed.output.splitlines()[2:]) == sorted(
        f"{'yes' if status == 'charged' else 'no'}\t1\t{device}"
        for device, status in devices.items()
    )


def test_an_unknown_code_is_flagged_and_alerted_never_charged_by_its_name(
    cucm, seed: Seed, db_url: str
) -> None:
    reset_settings(db_url)
    table = siete()
    # the code on the row is not registered; its description names a registered FAC
    setup, talk = fac_chain(table, "99991234", "Project Lima", GATEWAY, CALLED, 95)
    caller = table.value(talk, "callingPartyNumber")
    plan = seed.plan([("0051", RPM)])
    seed.account(caller, balance="5.00", plan=plan)
    seed.account("700100", balance="5.00", plan=plan, anis=["700100"])
    _fac(cucm, seed.token("admin"), "48151623", "Project Lima", "700100")

    resp = _post(cucm, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes([setup, talk]))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["statuses"] == {"unrated": 2}
    for row in (setup, talk):
        cdr = _by_uuid(db_url, table.value(row, "pkid"))
        assert cdr["billing_status"] == "unrated" and cdr["account_id"] is None
        assert "FAC ******34 is not registered: not charged" in cdr["billing_note"]
        assert cdr["apolo_vars"]["fac_unknown"] is True
    assert seed.balance("700100")["balance"] == "5.0000"  # not by authCodeDescription
    assert seed.balance(caller)["balance"] == "5.0000"  # nor by the caller
    (alert,) = alerts(db_url, "unknown_fac")  # the setup and the talk row: one alert
    assert alert["account"] is None and alert["occurrences"] == 2
    assert alert["detail"]["fac"] == "******34" and alert["detail"]["description"] == "Project Lima"
    assert alert["detail"]["pkid"] == table.value(talk, "pkid")
    rows = audits(db_url, "fraud.unknown_fac")
    assert [r["target"] for r in rows] == ["fac:******34"] * 2 and rows[0]["actor"] == "cucm"
    (hook,) = outbox(db_url, "fraud.unknown_fac")
    assert hook["payload"]["control"] == "unknown_fac" and hook["payload"]["account"] is None
    dump = _db(
        db_url,
        "SELECT (SELECT string_agg(detail::text, '') FROM fraud_alerts) ||"
        " (SELECT string_agg(payload::text, '') FROM webhook_outbox) AS t",
    )[0]["t"]
    assert "99991234" not in dump and FAC_KEY not in dump


def test_the_name_bills_only_a_row_that_carries_no_code(cucm, seed: Seed, db_url: str) -> None:
    table = siete()
    setup, talk = fac_chain(table, "", "Project Lima", GATEWAY, CALLED, 95)
    plan = seed.plan([("0051", RPM)])
    seed.account(table.value(talk, "callingPartyNumber"), balance="5.00", plan=plan)
    seed.account("700100", balance="5.00", plan=plan, anis=["700100"])
    _fac(cucm, seed.token("admin"), "48151623", "Project Lima", "700100")
    resp = _post(cucm, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes([setup, talk]))
    assert resp.status_code == 200, resp.get_json()
    charged = _by_uuid(db_url, table.value(talk, "pkid"))
    expected = call_cost(_rate(seed, plan), 95)
    assert charged["billing_status"] == "charged" and charged["cost"] == expected
    assert "FAC 'Project Lima' by name (the row carries no code)" in charged["billing_note"]
    assert Decimal(seed.balance("700100")["balance"]) == Decimal("5.00") - expected
    assert alerts(db_url, "unknown_fac") == []


def test_an_unknown_name_without_a_code_is_flagged_too(cucm, seed: Seed, db_url: str) -> None:
    reset_settings(db_url)
    table = siete()
    setup, talk = fac_chain(table, "", "Night shift", GATEWAY, CALLED, 60)
    caller = table.value(talk, "callingPartyNumber")
    seed.account(caller, balance="5.00", rates=[("0051", RPM)])
    resp = _post(cucm, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes([setup, talk]))
    assert resp.status_code == 200 and resp.get_json()["statuses"] == {"unrated": 2}
    assert "FAC 'Night shift' is not registered" in _by_uuid(
        db_url, table.value(talk, "pkid"))["billing_note"]  # fmt: skip
    assert seed.balance(caller)["balance"] == "5.0000"
    (alert,) = alerts(db_url, "unknown_fac")
    assert alert["subject"] == "name:Night shift" and alert["detail"]["fac"] is None
