"""Billability, the number rated, FAC carry-over on chains generated from real rows."""

from __future__ import annotations

import re

from unit.cucm.cucm_rows import DAMHAU_CMR, answered_row, damhau, fac_chain, read_table, siete

from sidecar.cucm.billing import Fac, billable, carry_over_facs, chain_keys, rated_number
from sidecar.cucm.fac_code import code_hmac, last_digits, masked, valid_code
from sidecar.cucm.flatfile import parse_flat_file
from sidecar.cucm.records import cdr_records
from sidecar.services.cucm_settings import DEFAULT_BILLABLE_DEVICES, load_cucm_settings

GATEWAY = "S0/SU0/DS1-0@gw-lima"


def _records(table, rows, quoted=True):  # type: ignore[no-untyped-def]
    return cdr_records(parse_flat_file(table.to_bytes(rows, quoted=quoted), "cdr"))


# destDeviceName values CUCM writes for devices it names itself: MGCP T1/E1 spans and
# BRI ports (the damhau CMR file names two real spans, ``S0/SU0/DS1-0/30`` style)
CUCM_GATEWAY_ENDPOINTS = (GATEWAY, "S0/SU1/DS1-1@gw-cusco.example.com", "S1/DS1-0@vg200",
                          "BRI/S0/SU0/1@br-lima")  # fmt: skip
# internal devices: phones, Jabber (CSF desktop, TCT iPhone, BOT Android, TAB tablet + user
# id), voicemail trunk and ports, media resources, analog FXS ports, and names an
# administrator chose (they may well be PSTN trunks, but only the site can say so)
INTERNAL_OR_SITE_NAMED = (
    "SEP0011223344AA", "CSFGWALKER", "TCTPSBCOOPER", "BOTJDOE", "TABJDOE", "Unity-VM-Trunk",
    "CiscoUM1-VI1", "CFB_2", "MTP_2", "AALN/S1/SU0/0@vg", "SIP-Trunk-PSTN", "CUBE_Lima",
    "Lima-GW", "",
)  # fmt: skip


def test_default_billable_devices_are_cucm_gateway_endpoints_and_nothing_internal() -> None:
    pattern = load_cucm_settings({}).billable_devices
    assert pattern.pattern == DEFAULT_BILLABLE_DEVICES
    table = siete()
    row = answered_row(table)
    phone_to_phone = _records(table, [row])[0]
    ok, why = billable(phone_to_phone, pattern)
    assert not ok and table.value(row, "destDeviceName") in why
    cmr = read_table(DAMHAU_CMR)
    spans = {cmr.value(r, "deviceName") for r in cmr.rows} - {"SEP1234567890"}
    assert spans == {"S0/SU0/DS1-0/30", "S0/SU0/DS1-1/30", "S0/SU0/DS1-1/31"}
    for device in (*CUCM_GATEWAY_ENDPOINTS, *sorted(spans)):
        record = _records(table, [table.fresh(row, destDeviceName=device)])[0]
        assert billable(record, pattern) == (True, ""), device
    for device in INTERNAL_OR_SITE_NAMED:
        record = _records(table, [table.fresh(row, destDeviceName=device)])[0]
        ok, why = billable(record, pattern)
        assert not ok and ("not a billable device" in why or "no destDeviceName" in why), device
    # every end-of-call row of both real CDR files goes to a phone: none billed by default
    for fixture in (siete(), damhau()):
        assert not any(billable(r, pattern)[0] for r in _records(fixture, fixture.rows))


def test_a_site_bills_its_own_trunks_by_setting_the_pattern() -> None:
    site = r"^(?:S\d+/(?:SU\d+/)?DS1-\d+|BRI/)|^(?:SIP-Trunk-PSTN|CUBE_Lima)$|^AALN/S0/SU1/"
    pattern = load_cucm_settings({"APOLO_CUCM_BILLABLE_DEVICES": site}).billable_devices
    table = damhau()
    row = answered_row(table)
    decided = {
        device: billable(_records(table, [table.fresh(row, destDeviceName=device)],
                                  quoted=False)[0], pattern)[0]
        for device in ("SIP-Trunk-PSTN", "CUBE_Lima", "AALN/S0/SU1/0@gw", GATEWAY,
                       "Unity-VM-Trunk", "AALN/S1/SU0/0@vg", "CSFGWALKER", "SIP-Trunk-PSTN-2")
    }  # fmt: skip
    assert decided == {
        "SIP-Trunk-PSTN": True, "CUBE_Lima": True, "AALN/S0/SU1/0@gw": True, GATEWAY: True,
        "Unity-VM-Trunk": False, "AALN/S1/SU0/0@vg": False, "CSFGWALKER": False,
        "SIP-Trunk-PSTN-2": False,
    }  # fmt: skip


def test_billable_devices_come_from_the_environment() -> None:
    settings = load_cucm_settings({"APOLO_CUCM_BILLABLE_DEVICES": "^SEP"})
    table = siete()
    records = _records(table, table.rows)
    decided = {r.pkid: billable(r, settings.billable_devices)[0] for r in records}
    for row in table.rows:
        assert decided[table.value(row, "pkid")] is table.value(row, "destDeviceName").startswith(
            "SEP"
        )


def test_only_end_of_call_records_are_billable() -> None:
    table = siete()
    record = _records(table, [table.fresh(answered_row(table), cdrRecordType=0)])[0]
    ok, why = billable(record, re.compile("."))
    assert not ok and "cdrRecordType 0" in why


def test_the_outpulsed_number_wins_over_the_final_called_number() -> None:
    table = damhau()
    records = _records(table, table.rows)
    for record, row in zip(records, table.rows, strict=True):
        outpulsed = table.value(row, "outpulsedCalledPartyNumber")
        assert rated_number(record) == (outpulsed or table.value(row, "finalCalledPartyNumber"))
    plus = _records(table, [table.fresh(table.rows[0], outpulsedCalledPartyNumber="+51 1 555")])
    assert rated_number(plus[0]) == "511555"


def test_fac_of_the_setup_record_carries_over_to_the_talk_record() -> None:
    table = siete()
    setup, talk = fac_chain(table, "4711", "Sales", GATEWAY, "0051987654", 95)
    other = table.fresh(
        answered_row(table),
        globalCallID_callId=int(table.value(setup, "globalCallID_callId")) + 1000,
        origLegCallIdentifier=1,
        destLegIdentifier=2,
    )
    records = _records(table, [talk, other, setup])  # order in the file does not matter
    facs = carry_over_facs(records)
    setup_pkid, talk_pkid = table.value(setup, "pkid"), table.value(talk, "pkid")
    assert facs[setup_pkid] == Fac("4711", "Sales", setup_pkid)
    assert facs[talk_pkid] == Fac("4711", "Sales", setup_pkid)
    assert table.value(other, "pkid") not in facs


def test_a_chain_linked_only_by_a_leg_identifier_shares_the_fac() -> None:
    table = siete()
    setup, talk = fac_chain(table, "90210", "", GATEWAY, "0051987654", 30)
    # after a transfer: another globalCallID, but the setup's destination leg continues
    transferred = table.changed(
        talk,
        globalCallID_callId=int(table.value(talk, "globalCallID_callId")) + 1,
        origLegCallIdentifier=table.value(setup, "destLegIdentifier"),
        destLegIdentifier=int(table.value(setup, "destLegIdentifier")) + 50,
    )
    records = _records(table, [setup, transferred])
    assert chain_keys(records[0])[0] != chain_keys(records[1])[0]
    facs = carry_over_facs(records)
    assert facs[table.value(transferred, "pkid")].code == "90210"


def test_a_row_keeps_its_own_fac_and_known_facs_come_from_earlier_files() -> None:
    table = siete()
    setup, talk = fac_chain(table, "1111", "A", GATEWAY, "0051987654", 10)
    talk = table.changed(talk, authorizationCodeValue="2222", authCodeDescription="B")
    facs = carry_over_facs(_records(table, [setup, talk]))
    assert facs[table.value(talk, "pkid")].code == "2222"
    only_talk = _records(
        table, [table.fresh(talk, authorizationCodeValue="", authCodeDescription="")]
    )[0]
    earlier = Fac("", "A", "stored-pkid", "ab" * 32)
    carried = carry_over_facs([only_talk], {chain_keys(only_talk)[0]: earlier})
    assert carried[only_talk.pkid] == earlier
    assert carry_over_facs([only_talk], {"g:0:0": earlier}) == {}


def test_fac_codes_are_keyed_hashes_and_show_only_last_digits() -> None:
    key = b"k" * 32
    assert code_hmac(key, "4711") != code_hmac(b"x" * 32, "4711")
    assert len(code_hmac(key, "4711")) == 64 and "4711" not in code_hmac(key, "4711")
    assert last_digits("4711") == "11" and masked("4711") == "**11"
    assert last_digits("12") == "" and masked("12") == "**"
    assert valid_code("0123456789012345") and not valid_code("12a") and not valid_code("")
