"""POST /freeswitch/cdr with the captured mod_xml_cdr requests, through the Flask client."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from conftest import FS_AUTH, call_body
from fixtures_path import FS_FIXTURES, read_http_capture

from sidecar.freeswitch.xml_cdr import decode_post, parse_cdr

CDR = FS_FIXTURES / "xml_cdr"
ANSWERED_B = "answered_uuid_kill_loopback_b_inbound.http"  # the leg that ran the dialplan
ANSWERED_A = "answered_uuid_kill_loopback_a_outbound.http"


def post_capture(client, path: Path, auth=FS_AUTH):  # type: ignore[no-untyped-def]
    cap = read_http_capture(path)
    return client.post(
        cap.target.replace("/cdr", "/freeswitch/cdr", 1),
        data=cap.body,
        content_type=cap.content_type,
        auth=auth,
    )


def record_of(path: Path):  # type: ignore[no-untyped-def]
    cap = read_http_capture(path)
    post = decode_post(cap.content_type, cap.body, cap.query["uuid"][0])
    return parse_cdr(post.xml, a_leg_hint=post.a_leg_hint)


def authorize(client, record) -> dict:  # type: ignore[no-untyped-def]
    resp = client.post(
        "/v1/authorize",
        json=call_body(record.uuid, record.caller, record.callee),
        auth=FS_AUTH,
    )
    assert resp.status_code == 200
    return resp.get_json()


def rows(db_url: str, sql: str, *params):  # type: ignore[no-untyped-def]
    with psycopg.connect(db_url) as c:
        return c.execute(sql, params).fetchall()


def test_requires_switch_credentials(client, seed) -> None:  # type: ignore[no-untyped-def]
    path = CDR / "textxml" / ANSWERED_B
    assert post_capture(client, path, auth=None).status_code == 401
    assert post_capture(client, path, auth=("freeswitch", "nope")).status_code == 401
    admin = seed.token("admin")
    cap = read_http_capture(path)
    resp = client.post(
        "/freeswitch/cdr?uuid=x",
        data=cap.body,
        content_type="text/xml",
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert resp.status_code == 401  # /freeswitch/* takes FreeSWITCH's basic auth, no token


@pytest.mark.parametrize("encoding", ["textxml", "base64", "plaintext", "urlencoded"])
def test_authorized_call_charged_once_in_every_encoding(
    client, seed, db_url, redis_url, encoding
) -> None:  # type: ignore[no-untyped-def]
    path = CDR / encoding / ANSWERED_B
    record = record_of(path)
    seed.account("100001", balance="10.00", rates=[("51", "0.60"), ("5198", "1.20")])
    auth = authorize(client, record)
    assert auth["authorized"] is True
    live = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    assert live.sismember("apolo:calls", record.uuid)

    for _ in range(3):  # FreeSWITCH retried, or two nodes replayed the same spool
        resp = post_capture(client, path)
        assert resp.status_code == 200
    body = resp.get_json()
    assert body["duplicate"] is True

    expected = Decimal("1.2000")  # billusec 3.04 s -> 4 s -> one 60 s increment at 1.20/min
    assert record.billsec == 4
    cdrs = rows(
        db_url,
        "SELECT billing_status, cost, billsec, fs_billsec, rate_prefix"
        " FROM cdrs WHERE call_uuid = %s",
        record.uuid,
    )
    assert cdrs == [("charged", expected, 4, record.fs_billsec, "5198")]
    ledger = rows(db_url, "SELECT kind, amount, balance_after FROM ledger WHERE cdr_id IS NOT NULL")
    assert ledger == [("call_charge", -expected, Decimal("10") - expected)]
    assert seed.balance("100001") == {
        "balance": "8.8000",
        "reserved": "0.0000",
        "available": "8.8000",
        "active_calls": "0",
    }
    assert rows(db_url, "SELECT status FROM reservations") == [("charged",)]
    assert not live.sismember("apolo:calls", record.uuid)  # live state dropped after commit
    assert not live.exists(f"apolo:call:{record.uuid}")


def test_twin_loopback_leg_is_stored_not_charged(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    b_leg = record_of(CDR / "textxml" / ANSWERED_B)
    seed.account("100001", balance="10.00")
    authorize(client, b_leg)
    assert post_capture(client, CDR / "textxml" / ANSWERED_A).get_json()["billing_status"] == (
        "not_billed"
    )
    assert post_capture(client, CDR / "textxml" / ANSWERED_B).get_json()["billing_status"] == (
        "charged"
    )
    assert rows(db_url, "SELECT count(*) FROM cdrs") == [(2,)]
    assert rows(db_url, "SELECT count(*) FROM ledger WHERE kind = 'call_charge'") == [(1,)]


def test_unauthorized_inbound_call_is_rated_by_the_identity_rule(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    # the captured SIP call came from 127.0.0.1 with caller ID 100001: a trunk there that
    # trusts caller IDs bills it, after the fact, to the account of that ANI
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    seed.trunk("capture-host", ["127.0.0.1/32"], trust_caller_id=True)
    body = post_capture(client, CDR / "sip" / "answered_sip_inbound_1.http").get_json()
    assert body["billing_status"] == "charged" and body["cost"] == "0.6000"
    assert seed.balance("100001")["balance"] == "9.4000"
    (note,) = rows(db_url, "SELECT billing_note FROM cdrs")[0]
    assert "rated after the fact" in note and "trunk capture-host" in note


def test_unknown_caller_is_stored_unrated(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    # the loopback call names account 100001 only in caller ID and billing_account, which
    # anyone can set: no identity, nobody pays, even with account 100001 there
    seed.account("100001", balance="10.00")
    body = post_capture(client, CDR / "textxml" / ANSWERED_B).get_json()
    assert body["billing_status"] == "unrated"
    assert rows(db_url, "SELECT count(*), count(account_id) FROM cdrs") == [(1, 0)]
    assert seed.balance("100001")["balance"] == "10.0000"


def test_unanswered_call_releases_reservation_without_charge(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    path = CDR / "urlencoded" / "noanswer_timeout_loopback_b_inbound.http"
    record = record_of(path)
    assert record.answer_uepoch == 0
    seed.account("100001", balance="10.00")
    authorize(client, record)
    assert seed.balance("100001")["reserved"] == "10.0000"
    assert post_capture(client, path).get_json()["billing_status"] == "unanswered"
    assert seed.balance("100001") == {
        "balance": "10.0000",
        "reserved": "0.0000",
        "available": "10.0000",
        "active_calls": "0",
    }
    assert rows(db_url, "SELECT status FROM reservations") == [("released",)]
    assert rows(db_url, "SELECT count(*) FROM ledger WHERE kind = 'call_charge'") == [(0,)]


HOSTILE = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE cdr [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<cdr><variables><uuid>&x;</uuid></variables></cdr>",
    "billion_laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><cdr><variables><uuid>&lol9;</uuid></variables></cdr>",
    "truncated": b'<?xml version="1.0"?><cdr><variables><uuid>abc</uuid>',
    "not_utf8": b'<?xml version="1.0"?><cdr><variables><uuid>\xff\xfe</uuid></variables></cdr>',
    "no_uuid": b'<?xml version="1.0"?><cdr><variables></variables></cdr>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_or_malformed_xml_is_rejected_and_writes_nothing(
    client, seed, db_url, name
) -> None:  # type: ignore[no-untyped-def]
    resp = client.post(
        "/freeswitch/cdr?uuid=a_abc", data=HOSTILE[name], content_type="text/xml", auth=FS_AUTH
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_cdr"
    assert rows(db_url, "SELECT count(*) FROM cdrs") == [(0,)]


def test_oversized_body_is_refused(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    # the body may be 3x the document limit (encode=true percent-encodes the XML) ...
    big = b'<?xml version="1.0"?><cdr>' + b"<x>" + b"a" * 6_000_000 + b"</x></cdr>"
    resp = client.post("/freeswitch/cdr?uuid=abc", data=big, content_type="text/xml", auth=FS_AUTH)
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "body_too_large"
    # ... the document itself no more than the limit
    big = b'<?xml version="1.0"?><cdr>' + b"<x>" + b"a" * 3_000_000 + b"</x></cdr>"
    resp = client.post("/freeswitch/cdr?uuid=abc", data=big, content_type="text/xml", auth=FS_AUTH)
    assert resp.status_code == 400 and "limit" in resp.get_json()["error"]["message"]
    assert rows(db_url, "SELECT count(*) FROM cdrs") == [(0,)]


def test_uuid_mismatch_is_rejected(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    cap = read_http_capture(CDR / "textxml" / ANSWERED_B)
    resp = client.post(
        "/freeswitch/cdr?uuid=a_00000000-0000-0000-0000-000000000000",
        data=cap.body,
        content_type="text/xml",
        auth=FS_AUTH,
    )
    assert resp.status_code == 400
    assert rows(db_url, "SELECT count(*) FROM cdrs") == [(0,)]


def test_query_by_uuid_shows_ledger(client, seed) -> None:  # type: ignore[no-untyped-def]
    record = record_of(CDR / "textxml" / ANSWERED_B)
    seed.account("100001", balance="10.00")
    authorize(client, record)
    post_capture(client, CDR / "textxml" / ANSWERED_B)
    token = seed.token("viewer")
    resp = client.get(f"/v1/cdrs?uuid={record.uuid}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    (cdr,) = resp.get_json()["cdrs"]
    assert cdr["account"] == "100001" and cdr["cost"] == "0.6000"
    assert [e["amount"] for e in cdr["ledger"]] == ["-0.6000"]
    assert client.get(f"/v1/cdrs?uuid={record.uuid}").status_code == 401
