"""POST /freeswitch/dialplan with the captured mod_xml_curl request."""

from __future__ import annotations

from conftest import FS_AUTH
from fixtures_path import FS_FIXTURES, read_http_capture
from lxml import etree

REQUEST = FS_FIXTURES / "xml_curl" / "dialplan_request_loopback.http"
# The captured loopback channel says nothing about who calls; these tests give it what an
# authenticated directory user with accountcode 100001 carries (tests/api/test_identity_routes.py
# has the captured SIP request and the identity rule itself).
USER_100001 = b"&variable_sip_authorized=true&variable_accountcode=100001"


def post(client, body: bytes | None = None):  # type: ignore[no-untyped-def]
    cap = read_http_capture(REQUEST)
    return client.post(
        "/freeswitch/dialplan",
        data=(body if body is not None else cap.body) + USER_100001,
        content_type=cap.content_type,
        auth=FS_AUTH,
    )


def actions(resp) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    doc = etree.fromstring(resp.data, etree.XMLParser(resolve_entities=False, no_network=True))
    assert doc.get("type") == "freeswitch/xml"
    return [(a.get("application"), a.get("data") or "") for a in doc.iter("action")]


def test_needs_switch_credentials(client, seed) -> None:  # type: ignore[no-untyped-def]
    cap = read_http_capture(REQUEST)
    assert (
        client.post(
            "/freeswitch/dialplan", data=cap.body, content_type=cap.content_type
        ).status_code
        == 401
    )


def test_authorized_call_bridges_with_scheduled_hangup(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="1.20", rates=[("51", "0.60")])
    got = actions(post(client))
    assert ("set", "apolo_result=authorized") in got
    assert ("set", "apolo_account=100001") in got
    assert ("set", "apolo_max_duration=120") in got
    assert ("set", "execute_on_answer=sched_hangup +119 ALLOTTED_TIMEOUT") in got
    assert got[-1] == ("bridge", "sofia/gateway/pstn/51987654321")
    assert seed.balance("100001")["reserved"] == "1.2000"


def test_denied_call_is_rejected_and_never_bridged(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="0.00")
    got = actions(post(client))
    assert ("set", "apolo_result=denied") in got
    assert ("set", "apolo_reason=insufficient_balance") in got
    assert got[-1] == ("hangup", "CALL_REJECTED")
    assert all(app != "bridge" for app, _ in got)


def test_other_context_is_not_found(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    cap = read_http_capture(REQUEST)
    body = cap.body.replace(b"Context=default", b"Context=public")  # Caller- and Hunt-
    assert body != cap.body
    resp = post(client, body)
    assert b'status="not found"' in resp.data
    assert seed.balance("100001")["reserved"] == "0.0000"


def test_rehunt_into_the_guard_context_is_not_rated_again(client, seed) -> None:  # type: ignore[no-untyped-def]
    # dialplan/apolo_outbound.xml re-hunts with execute_extension apolo_bridge XML
    # apolo_authorized: Hunt-* change, the caller profile (Caller-*) does not
    seed.account("100001", balance="1.20", rates=[("51", "0.60")])
    cap = read_http_capture(REQUEST)
    body = cap.body.replace(b"Hunt-Context=default", b"Hunt-Context=apolo_authorized").replace(
        b"Hunt-Destination-Number=51987654321", b"Hunt-Destination-Number=apolo_bridge"
    )
    assert body.count(b"apolo_") == 2
    resp = post(client, body)
    assert b'status="not found"' in resp.data
    assert seed.balance("100001")["reserved"] == "0.0000"
