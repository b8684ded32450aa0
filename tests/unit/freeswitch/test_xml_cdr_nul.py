"""A CDR whose variables hold a NUL byte parses: the value is kept with U+FFFD, flagged, and
never names the account (so the CDR can be stored, not refused)."""

from __future__ import annotations

import time
import uuid

from sidecar.freeswitch.xml_cdr import parse_cdr
from sidecar.simulator.cdr_template import build_cdr


def _cdr(extra: bytes) -> bytes:
    answered = time.time_ns() // 1000 - 30_000_000
    identity = {"sip_authorized": "true", "sip_network_ip": "192.0.2.10"}
    xml = build_cdr(str(uuid.uuid4()), "100001", "51987654321", answered, 20_000_000, identity)
    return xml.replace(b"<variables>", b"<variables>" + extra, 1)


def test_a_nul_in_accountcode_is_flagged_and_not_used() -> None:
    record = parse_cdr(_cdr(b"<accountcode>999999%00</accountcode><apolo_x>a%00b</apolo_x>"))
    assert record.flagged == ("accountcode", "apolo_x")
    assert record.variables["accountcode"] == "999999\ufffd"
    assert record.apolo_vars["apolo_x"] == "a\ufffdb"
    assert record.facts.accountcode is None  # a value a NUL was taken out of names nobody
    assert record.facts.authenticated and record.facts.network_ip == "192.0.2.10"
    assert "\x00" not in repr(record.variables)


def test_a_cdr_without_nul_flags_nothing() -> None:
    record = parse_cdr(_cdr(b"<accountcode>999999</accountcode>"))
    assert record.flagged == () and record.facts.accountcode == "999999"
