"""The simulator's CDR template: what it builds must read back exactly through the adapter."""

from __future__ import annotations

import math
import uuid as uuid_lib
from urllib.parse import unquote

import pytest
from fixtures_path import FS_FIXTURES
from lxml import etree

from sidecar.freeswitch.xml_cdr import decode_post, parse_cdr
from sidecar.identity import CallerFacts
from sidecar.simulator.cdr_template import RING_USEC, build_cdr, fs_url_encode

TEMPLATE_SOURCE = FS_FIXTURES / "xml_cdr/textxml/answered_uuid_kill_loopback_b_inbound.xml"
ANSWER_US = 1_795_344_362_575_958  # a time inside the capture's day, off a second boundary
CAPTURED_UUIDS = (  # the captured call's two channels and caller-profile ids
    "e4bfb5cb-7d32-4615-b062-85e4405b846b",
    "b4c40ec8-26e6-429e-9466-b51b6d923839",
    "d9a14519-04c7-4362-a0cb-b64f9cc40bb9",
    "029e0db8-d89b-4526-bb2b-9c61888b1147",
)


SIP_PBX = {"sip_network_ip": "192.0.2.10"}  # the call came from a PBX at this address


def new_uuid() -> str:
    return str(uuid_lib.uuid4())


def variables(xml: bytes) -> dict[str, list[str]]:
    root = etree.fromstring(xml)
    out: dict[str, list[str]] = {}
    for child in root.find("variables"):
        out.setdefault(child.tag, []).append(unquote(child.text or ""))
    return out


def test_template_is_the_captured_document() -> None:
    from importlib import resources

    packaged = resources.files("sidecar.simulator").joinpath("template_cdr.xml").read_bytes()
    assert packaged == TEMPLATE_SOURCE.read_bytes()


@pytest.mark.parametrize("billusec", [1, 999_999, 1_000_000, 3_040_002, 61_500_000, 3_600_000_000])
def test_answered_cdr_reads_back(billusec: int) -> None:
    uuid = new_uuid()
    xml = build_cdr(uuid, "100002", "5114567890", ANSWER_US, billusec, SIP_PBX)
    record = parse_cdr(xml, a_leg_hint=True, uuid_hint=uuid)

    assert record.uuid == uuid
    assert (record.caller, record.callee, record.ani) == ("100002", "5114567890", "100002")
    assert (record.leg, record.direction) == ("a", "inbound")
    assert record.answer_uepoch == ANSWER_US
    assert record.start_uepoch == ANSWER_US - RING_USEC
    assert record.end_uepoch == ANSWER_US + billusec
    assert record.billusec == billusec
    assert record.billsec == math.ceil(billusec / 1_000_000)
    # FreeSWITCH's own billsec: whole seconds between the two epochs, not a rounding
    assert record.fs_billsec == (ANSWER_US + billusec) // 10**6 - ANSWER_US // 10**6
    assert record.hangup_cause == "NORMAL_CLEARING"
    assert record.hangup_cause_q850 == 16
    assert record.facts == CallerFacts(caller_id="100002", network_ip="192.0.2.10")
    assert record.linked_uuids == ()


def test_unanswered_cdr_reads_back() -> None:
    uuid = new_uuid()
    xml = build_cdr(uuid, "100001", "51987654321", ANSWER_US, 0, hangup_cause="CALL_REJECTED")
    record = parse_cdr(xml, a_leg_hint=True, uuid_hint=uuid)

    assert not record.answered
    assert (record.answer_uepoch, record.billusec, record.billsec, record.fs_billsec) == (
        0,
        0,
        0,
        0,
    )
    assert record.start_uepoch == ANSWER_US - RING_USEC
    assert record.end_uepoch == ANSWER_US
    assert (record.hangup_cause, record.hangup_cause_q850) == ("CALL_REJECTED", 21)
    assert record.facts == CallerFacts(caller_id="100001")  # no identity unless one is given
    assert "billing_account" not in record.variables  # the capture's originate variable
    values = variables(xml)
    assert "answer_stamp" not in values and "endpoint_disposition" not in values
    assert values["last_app"] == ["hangup"] and values["last_arg"] == ["CALL_REJECTED"]
    assert values["billmsec"] == ["0"] and values["duration"] == ["2"]
    apps = etree.fromstring(xml).findall("app_log/application")
    assert [(a.get("app_name"), a.get("app_data")) for a in apps] == [("hangup", "CALL_REJECTED")]


def test_nothing_links_back_to_the_capture() -> None:
    uuid = new_uuid()
    xml = build_cdr(uuid, "100001", "51987654321", ANSWER_US, 2_000_000, SIP_PBX)
    text = xml.decode()
    for captured in CAPTURED_UUIDS:
        assert captured not in text
    values = variables(xml)
    assert "other_loopback_leg_uuid" not in values and "origination_uuid" not in values
    assert values["uuid"] == values["call_uuid"] == [uuid]
    assert values["DP_MATCH"] == ["51987654321", "51987654321"]
    assert values["caller_id"] == ['"Apolo Test" <100001>']
    # reproducible: the same inputs give the same document
    assert build_cdr(uuid, "100001", "51987654321", ANSWER_US, 2_000_000, SIP_PBX) == xml


def test_variables_are_percent_encoded_like_freeswitch() -> None:
    assert fs_url_encode('"Apolo Test" <100001>') == "%22Apolo%20Test%22%20%3C100001%3E"
    assert fs_url_encode("tone_stream://%(500,500,440);loops=-1") == (
        "tone_stream%3A//%25(500,500,440)%3Bloops%3D-1"
    )
    assert fs_url_encode("2026-11-22 10:46:02") == "2026-11-22%2010%3A46%3A02"
    xml = build_cdr(new_uuid(), "100001", "51987654321", ANSWER_US, 1_000_000)
    assert b"<caller_id>%22Apolo%20Test%22%20%3C100001%3E</caller_id>" in xml
    assert b"<answer_stamp>2026-11-22%2010%3A46%3A02</answer_stamp>" in xml


def test_posts_as_text_xml_the_way_the_sidecar_decodes_it() -> None:
    uuid = new_uuid()
    xml = build_cdr(uuid, "100001", "51987654321", ANSWER_US, 1_500_000)
    post = decode_post("text/xml", xml, f"a_{uuid}")
    assert parse_cdr(post.xml, a_leg_hint=post.a_leg_hint, uuid_hint=post.uuid_hint).uuid == uuid


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"billusec": -1}, "billusec"),
        ({"hangup_cause": "normal clearing"}, "hangup cause"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "uuid": new_uuid(), "caller": "100001", "callee": "51987654321",
        "answer_epoch_us": ANSWER_US, "billusec": 1_000_000,
    }  # fmt: skip
    with pytest.raises(ValueError, match=message):
        build_cdr(**{**args, **kwargs})  # type: ignore[arg-type]
