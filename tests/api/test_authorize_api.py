"""POST /v1/authorize through the Flask test client, on the real test database and Redis."""

from __future__ import annotations

import uuid as uuidlib
from decimal import Decimal

import psycopg
import redis as redis_lib
from conftest import FS_AUTH, call_body


def _auth(client, **body):  # type: ignore[no-untyped-def]
    """A call from the test PBX (its trunk trusts the caller ID) unless ``body`` says else."""
    base = call_body(str(uuidlib.uuid4()), "100001")
    return client.post("/v1/authorize", json={**base, **body}, auth=FS_AUTH)


def test_requires_credentials(client, seed) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/authorize", json={}).status_code == 401
    assert client.post("/v1/authorize", json={}, auth=("freeswitch", "wrong")).status_code == 401
    viewer = seed.token("viewer")
    resp = client.post("/v1/authorize", json={}, headers={"Authorization": f"Bearer {viewer}"})
    assert resp.status_code == 403
    assert resp.get_json()["error"]["code"] == "forbidden"


def test_authorized_reserves_and_limits(client, seed, redis_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00", rates=[("51", "0.60")])
    resp = _auth(client, uuid="call-1")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["authorized"] is True and body["reason"] == "authorized"
    assert body["account"] == "100001"
    # 3600 s at 0.60/min = 36.00 > 10.00: the whole balance is reserved, 1000 s of talk
    assert body["reserved"] == "10.0000"
    assert body["max_duration"] == 960  # 16 whole minutes at 60/60 increments
    assert body["sched_hangup_seconds"] == 959
    assert body["rate"]["prefix"] == "51" and body["rate"]["rate_per_minute"] == "0.600000"
    assert seed.balance("100001") == {
        "balance": "10.0000",
        "reserved": "10.0000",
        "available": "0.0000",
        "active_calls": "1",
    }
    with psycopg.connect(seed.url) as c:
        (hold,) = c.execute(
            "SELECT extract(epoch FROM expires_at - created_at) FROM reservations"
        ).fetchone()
    # expires after the talk time it pays for (960 s, bounded above by 3600 * 10 / 36 = 1000 s)
    # plus the default grace of 600 s
    assert 960 + 600 <= hold <= 1000 + 600 + 1
    live = redis_lib.Redis.from_url(redis_url, decode_responses=True).hgetall("apolo:call:call-1")
    assert live["account"] == "100001" and live["max_duration"] == "960"
    # the next call finds nothing available
    second = _auth(client).get_json()
    assert second["authorized"] is False and second["reason"] == "insufficient_balance"


def test_reservation_is_capped_by_reservation_seconds(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="100.00", rates=[("51", "0.60")])
    body = _auth(client).get_json()
    assert body["reserved"] == "36.0000" and body["max_duration"] == 3600
    assert seed.balance("100001")["available"] == "64.0000"


def test_denials(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("200001", balance="0.00")
    seed.account("200002", status="suspended")
    seed.account("200003", max_calls=1)
    seed.account("200004", rates=[("44", "0.10")])
    assert _auth(client, caller="999999").get_json()["reason"] == "account_not_found"
    assert _auth(client, caller="200001").get_json()["reason"] == "insufficient_balance"
    assert _auth(client, caller="200002").get_json()["reason"] == "account_suspended"
    assert _auth(client, caller="200004").get_json()["reason"] == "no_rate"
    assert _auth(client, caller="200003").get_json()["authorized"] is True
    limited = _auth(client, caller="200003").get_json()
    assert limited["reason"] == "concurrent_limit" and limited["authorized"] is False
    assert seed.balance("200003")["active_calls"] == "1"


def test_the_body_cannot_pick_the_account(client, seed) -> None:  # type: ignore[no-untyped-def]
    # older hooks sent "account" (the channel's accountcode or a dialplan argument): it is not
    # read; who pays comes from the facts only
    seed.account("300001", anis=["5550001"])
    seed.account("300002", anis=["5550002"], balance="0")
    body = _auth(client, caller="5550002", account="300001").get_json()
    assert body["authorized"] is False and body["reason"] == "insufficient_balance"
    assert body["account"] == "300002"
    assert seed.balance("300001")["reserved"] == "0.0000"
    assert _auth(client, caller="x", account="300001").get_json()["reason"] == "account_not_found"
    unidentified = {"uuid": "no-facts", "caller": "5550001", "callee": "51987654321",
                    "account": "300001"}  # fmt: skip
    answer = client.post("/v1/authorize", json=unidentified, auth=FS_AUTH).get_json()
    assert answer["reason"] == "unidentified_caller" and answer["account"] is None


def test_same_uuid_twice_reserves_once(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="100.00")
    first = _auth(client, uuid="dup-1").get_json()
    again = _auth(client, uuid="dup-1").get_json()
    assert first["reservation_id"] == again["reservation_id"]
    assert seed.balance("100001")["reserved"] == "36.0000"


def test_postpaid_uses_credit_limit(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("400001", balance="0", type="postpaid", credit_limit="1.20")
    body = _auth(client, caller="400001").get_json()
    assert body["authorized"] is True and body["max_duration"] == 120


def test_expired_reservations_are_released_and_flagged(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="0.60")
    assert _auth(client, uuid="old-call").get_json()["authorized"] is True
    assert _auth(client).get_json()["reason"] == "insufficient_balance"
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE reservations SET expires_at = now() - interval '1 second'")
    body = _auth(client, uuid="new-call").get_json()
    assert body["authorized"] is True
    with psycopg.connect(db_url) as c:
        status = c.execute(
            "SELECT status, close_reason FROM reservations WHERE call_uuid = 'old-call'"
        ).fetchone()
    assert status[0] == "expired" and "expired" in status[1]
    assert Decimal(seed.balance("100001")["reserved"]) == Decimal("0.6")


def test_bad_requests_change_nothing(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    resp = client.post(
        "/v1/authorize", data=b"{not json", auth=FS_AUTH, content_type="application/json"
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_json"
    resp = client.post("/v1/authorize", json={"uuid": "x", "caller": 5}, auth=FS_AUTH)
    assert resp.status_code == 400
    assert set(resp.get_json()["error"]) == {"code", "message", "details"}
    for variables in ([], "x", {"accountcode": 100001}):
        resp = client.post(
            "/v1/authorize", json={**call_body("y", "100001"), "variables": variables},
            auth=FS_AUTH,
        )  # fmt: skip
        assert resp.status_code == 400, variables
        assert resp.get_json()["error"]["code"] == "invalid_request"
    # what the caller wrote (a header FreeSWITCH passes on) may be anything: a clean denial,
    # never a 4xx that a failing-open hook would let through
    for variables in ({"sip_network_ip": "1" * 600}, {"sip_h_X-Billing-Account": "1\x00"}):
        resp = client.post(
            "/v1/authorize", json={**call_body("y", "100001"), "variables": variables},
            auth=FS_AUTH,
        )  # fmt: skip
        assert resp.status_code == 200, variables
        assert resp.get_json()["authorized"] is False
        assert resp.get_json()["reason"] == "invalid_request"
    assert seed.balance("100001")["reserved"] == "0.0000"
