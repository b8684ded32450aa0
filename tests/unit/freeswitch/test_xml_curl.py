import json
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import pytest
from fixtures_path import FS_FIXTURES, read_http_capture
from lxml import etree

from sidecar.freeswitch.commands import execute_on_answer_sched_hangup
from sidecar.freeswitch.xml_cdr import parse_cdr
from sidecar.freeswitch.xml_curl import (
    DialplanRequest,
    DialplanRequestError,
    bridge_document,
    not_found_document,
    parse_dialplan_request,
    reject_document,
)
from sidecar.freeswitch.xml_safe import parse_xml
from sidecar.identity import CallerFacts

# what the captures say about their callers: the loopback channels carry no identity at all
# (billing_account is an ordinary variable anyone's dialplan or originate can set); the SIP
# call came unauthenticated from 127.0.0.1 with a caller-written X-Billing-Account header
LOOPBACK_FACTS = CallerFacts(caller_id="100001")
SIP_FACTS = CallerFacts(caller_id="100001", network_ip="127.0.0.1", billing_header="100001")

CURL_DIR = FS_FIXTURES / "xml_curl"
REQUESTS = sorted(CURL_DIR.glob("dialplan_request_*.http"))
LIMIT = 1_000_000
HOSTILE = 'x"/><action application="bridge" data="sofia/gateway/evil/1"/><action application="set'


def _form(path: Path) -> list[tuple[str, str]]:
    capture = read_http_capture(path)
    assert capture.method == "POST"
    assert capture.content_type == "application/x-www-form-urlencoded"
    assert capture.headers["user-agent"] == "freeswitch-xml/1.0"
    assert "authorization" not in capture.headers
    return parse_qsl(capture.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)


def _request(name: str) -> DialplanRequest:
    return parse_dialplan_request(dict(_form(CURL_DIR / name)))


def test_http_bodies_match_decoded_field_lists() -> None:
    assert len(REQUESTS) == 3
    for path in REQUESTS:
        pairs = _form(path)
        fields = path.with_name(path.name.replace(".http", ".fields.json"))
        if fields.exists():
            assert pairs == [tuple(p) for p in json.loads(fields.read_text())]
        assert b"+" not in read_http_capture(path).body  # spaces travel as %20


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "dialplan_request_loopback.http",
            DialplanRequest(
                section="dialplan",
                uuid="e7d4ae98-6c30-45b6-a52d-eb08b28d118d",
                caller="100001",
                callee="51987654321",
                context="default",
                facts=LOOPBACK_FACTS,
                hostname="fs-test-host",
                call_direction="inbound",
                core_uuid="00260012-fffb-4210-b3e4-60be0ba3a29d",
            ),
        ),
        (
            "dialplan_request_sip.http",
            DialplanRequest(
                section="dialplan",
                uuid="db8478d8-2420-4bc8-b18c-90bba76708ff",
                caller="100001",
                callee="51987654321",
                context="public",
                facts=SIP_FACTS,
                hostname="fs-test-host",
                call_direction="inbound",
                core_uuid="46829162-fed2-4aa5-9e9a-6a5197905cfa",
            ),
        ),
        (
            "dialplan_request_loopback_python_route.http",
            DialplanRequest(
                section="dialplan",
                uuid="0f1b5062-90db-4fac-99ae-9150acb65918",
                caller="100001",
                callee="51666000001",
                context="default",
                facts=LOOPBACK_FACTS,
                hostname="fs-test-host",
                call_direction="inbound",
                core_uuid="00260012-fffb-4210-b3e4-60be0ba3a29d",
            ),
        ),
    ],
)
def test_parse_dialplan_requests(name: str, expected: DialplanRequest) -> None:
    assert _request(name) == expected


def test_fields_json_gives_the_same_request() -> None:
    for stem in ("dialplan_request_loopback", "dialplan_request_sip"):
        pairs = json.loads((CURL_DIR / f"{stem}.fields.json").read_text())
        assert parse_dialplan_request(dict(pairs)) == _request(f"{stem}.http")


def test_request_uuid_is_the_dialplan_leg_of_the_cdr() -> None:
    # xml_curl is asked by loopback B; its CDR carries the same uuid and destination.
    cdr = parse_cdr(
        (FS_FIXTURES / "xml_cdr/urlencoded/answered_uuid_kill_loopback_b_inbound.xml").read_bytes()
    )
    request = _request("dialplan_request_loopback.http")
    assert (request.uuid, request.callee, request.context) == (cdr.uuid, cdr.callee, "default")
    assert request.facts == cdr.facts == LOOPBACK_FACTS


def test_identity_facts_come_from_the_variable_fields() -> None:
    loop = dict(_form(CURL_DIR / "dialplan_request_loopback.http"))
    sip = dict(_form(CURL_DIR / "dialplan_request_sip.http"))
    assert "variable_billing_account" in loop and "variable_accountcode" not in loop
    assert "variable_sip_h_X-Billing-Account" in sip and "variable_sip_authorized" not in sip
    authenticated = {
        **sip,
        "variable_accountcode": "ACC9",
        "variable_sip_authorized": "true",
        "variable_sip_auth_username": "1001",
        "variable_sip_auth_realm": "Realm.Example",
        "variable_domain_name": "PBX.example",
    }
    assert parse_dialplan_request(authenticated).facts == CallerFacts(
        caller_id="100001",
        accountcode="ACC9",
        authenticated=True,
        sip_user="1001",
        sip_domain="PBX.example",
        network_ip="127.0.0.1",
        billing_header="100001",
    )
    # names without the variable_ prefix are event headers, not channel variables
    forged = {
        **loop,
        "accountcode": "100002",
        "sip_authorized": "true",
        "sip_network_ip": "1.2.3.4",
    }
    assert parse_dialplan_request(forged).facts == LOOPBACK_FACTS


def test_fallback_fields() -> None:
    form = dict(_form(CURL_DIR / "dialplan_request_sip.http"))
    del form["Caller-Caller-ID-Number"], form["Caller-Destination-Number"], form["Caller-Context"]
    request = parse_dialplan_request(form)
    assert (request.caller, request.callee, request.context) == ("100001", "51987654321", "public")


@pytest.mark.parametrize(
    "missing",
    [
        ("section",),
        ("Unique-ID",),
        ("Caller-Destination-Number", "Hunt-Destination-Number"),
        ("Caller-Context", "Hunt-Context"),
    ],
)
def test_required_fields(missing: tuple[str, ...]) -> None:
    form = dict(_form(CURL_DIR / "dialplan_request_loopback.http"))
    for name in missing:
        del form[name]
    with pytest.raises(DialplanRequestError):
        parse_dialplan_request(form)


def test_bad_unique_id() -> None:
    form = dict(_form(CURL_DIR / "dialplan_request_loopback.http"))
    with pytest.raises(DialplanRequestError, match="Unique-ID"):
        parse_dialplan_request({**form, "Unique-ID": "x y\napi hupall"})


# --- response documents ----------------------------------------------------------------------


def _c14n(data: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(data, parser), method="c14n")


def _actions(doc: bytes) -> list[tuple[str, str | None]]:
    root = parse_xml(doc, LIMIT)
    (condition,) = root.findall("section/context/extension/condition")
    return [(a.get("application"), a.get("data")) for a in condition]


def _skeleton(doc: bytes) -> list[tuple[str, dict[str, str]]]:
    """Element paths and attributes above the actions, ignoring names we choose ourselves."""
    root = parse_xml(doc, LIMIT)
    out = []
    for elem in root.iter():
        if elem.tag == "action":
            continue
        attrs = {k: v for k, v in elem.attrib.items() if k not in ("description", "name")}
        out.append((root.getroottree().getpath(elem), attrs))
    return out


def test_not_found_document_matches_fixture() -> None:
    doc = not_found_document()
    assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>')
    assert _c14n(doc) == _c14n((CURL_DIR / "response_not_found.xml").read_bytes())


def test_reject_document() -> None:
    doc = reject_document(
        "default", "CALL_REJECTED", {"apolo_result": "rejected", "apolo_reason": "no funds"}
    )
    assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>')
    assert _skeleton(doc) == _skeleton((CURL_DIR / "response_dialplan_reject.xml").read_bytes())
    root = parse_xml(doc, LIMIT)
    assert root.find("section").get("name") == "dialplan"
    assert root.find("section/context").get("name") == "default"
    assert _actions(doc) == [
        ("set", "apolo_result=rejected"),
        ("set", "apolo_reason=no funds"),
        ("hangup", "CALL_REJECTED"),
    ]


def test_bridge_document() -> None:
    eoa = execute_on_answer_sched_hangup(300)
    doc = bridge_document(
        "public",
        {"apolo_result": "authorized", "apolo_max_duration": "300", "apolo_account": "100001"},
        eoa,
        "{loopback_bowout=false}loopback/51987654321/default",
    )
    assert _skeleton(doc) == _skeleton(
        (CURL_DIR / "response_dialplan_answer_tone.xml").read_bytes()
    )
    assert parse_xml(doc, LIMIT).find("section/context").get("name") == "public"
    assert _actions(doc) == [
        ("set", "apolo_result=authorized"),
        ("set", "apolo_max_duration=300"),
        ("set", "apolo_account=100001"),
        ("set", "execute_on_answer=sched_hangup +299 ALLOTTED_TIMEOUT"),
        ("set", "hangup_after_bridge=true"),
        ("bridge", "{loopback_bowout=false}loopback/51987654321/default"),
    ]
    without = bridge_document("public", {}, eoa, "loopback/1/default", hangup_after_bridge=False)
    assert [a for a, _ in _actions(without)] == ["set", "bridge"]


def test_hostile_values_are_escaped_not_interpreted() -> None:
    doc = reject_document(HOSTILE, "CALL_REJECTED", {"apolo_reason": HOSTILE})
    assert HOSTILE.encode() not in doc
    root = parse_xml(doc, LIMIT)
    assert root.find("section/context").get("name") == HOSTILE
    assert _actions(doc) == [("set", f"apolo_reason={HOSTILE}"), ("hangup", "CALL_REJECTED")]
    doc = bridge_document("default", {"apolo_reason": "<&>'\""}, "sched_hangup +1 X", HOSTILE)
    assert _actions(doc)[0] == ("set", "apolo_reason=<&>'\"")
    assert _actions(doc)[-1] == ("bridge", HOSTILE)
    assert len(_actions(doc)) == 4


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("${system(rm -rf /)}", "%24{system(rm -rf /)}"),
        ("$${hold_music}", "%24%24{hold_music}"),
        ("line\nbreak\r", "line%0Abreak%0D"),
        ("nul\x00", "nul%00"),
        ("100%", "100%25"),
        ("Apolo Tést <1>", "Apolo Tést <1>"),
    ],
)
def test_unsafe_variable_values_are_percent_encoded(value: str, escaped: str) -> None:
    # a reject must still be producible when a value echoes caller-supplied data
    doc = reject_document("default", "CALL_REJECTED", {"apolo_account": value})
    assert _actions(doc)[0] == ("set", f"apolo_account={escaped}")
    assert unquote(escaped) == value
    doc = bridge_document("default", {"apolo_account": value}, "sched_hangup +1 X", "loopback/1")
    assert _actions(doc)[0] == ("set", f"apolo_account={escaped}")


@pytest.mark.parametrize(
    "variables",
    [
        {"execute_on_answer": "sched_hangup +1"},
        {"hangup_after_bridge": "false"},
        {"apolo_x y": "1"},
        {"APOLO_RESULT": "1"},
        {"apolo_x=1;apolo_y": "1"},
        {"apolo_rate": 0.5},
    ],
)
def test_unsafe_variables_are_refused(variables: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        reject_document("default", "CALL_REJECTED", variables)
    with pytest.raises(ValueError):
        bridge_document("default", variables, "sched_hangup +1 X", "loopback/1/default")


@pytest.mark.parametrize(
    ("context", "cause"),
    [
        ("", "CALL_REJECTED"),
        ("def\rault", "CALL_REJECTED"),
        ("${context}", "CALL_REJECTED"),
        ("default", "call_rejected"),
        ("default", "CALL_REJECTED\nX"),
        ("default", "CALL_REJECTED default"),
    ],
)
def test_reject_refuses_unsafe_arguments(context: str, cause: str) -> None:
    with pytest.raises(ValueError):
        reject_document(context, cause, {})


@pytest.mark.parametrize(
    ("context", "eoa", "target"),
    [
        ("", "sched_hangup +1 X", "loopback/1/default"),
        ("default", "sched_hangup +${x} X", "loopback/1/default"),
        ("default", "sched_hangup +1 X\n", "loopback/1/default"),
        ("default", "sched_hangup +1 X", "loopback/${dest}/default"),
        ("default", "sched_hangup +1 X", "loopback/1/default\r\n"),
        ("default", "sched_hangup +1 X", " "),
    ],
)
def test_bridge_refuses_unsafe_arguments(context: str, eoa: str, target: str) -> None:
    with pytest.raises(ValueError):
        bridge_document(context, {}, eoa, target)
