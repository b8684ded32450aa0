"""Accounts through the admin API: roles, validation, recharge with ledger and audit."""

from __future__ import annotations

import psycopg


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_roles_and_credentials(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    viewer, operator = seed.token("viewer"), seed.token("operator")
    assert client.get("/v1/accounts/100001").status_code == 401
    assert client.get("/v1/accounts/100001", headers=bearer("apo_forged")).status_code == 401
    assert (
        client.get("/v1/accounts/100001", auth=("freeswitch", "test-fs-secret")).status_code == 403
    )
    assert client.get("/v1/accounts/100001", headers=bearer(viewer)).status_code == 200
    new = {"number": "9", "plan": "x", "type": "prepaid"}
    assert client.post("/v1/accounts", json=new, headers=bearer(operator)).status_code == 403
    recharge = client.post(
        "/v1/accounts/100001/recharges", json={"amount": "1"}, headers=bearer(viewer)
    )
    assert recharge.status_code == 403


def test_create_read_and_recharge(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    admin = seed.token("admin", name="alice")
    resp = client.post(
        "/v1/accounts",
        json={
            "number": "700001",
            "plan": plan,
            "type": "prepaid",
            "balance": "12.50",
            "anis": ["700001", "5557001"],
            "max_calls": 3,
        },
        headers=bearer(admin),
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["balance"] == "12.5000"
    resp = client.post(
        "/v1/accounts/700001/recharges", json={"amount": 2.25}, headers=bearer(admin)
    )
    assert resp.status_code == 201 and resp.get_json()["balance"] == "14.7500"
    got = client.get("/v1/accounts/700001", headers=bearer(admin)).get_json()
    assert got["anis"] == ["5557001", "700001"] and got["available"] == "14.7500"
    assert [(e["kind"], e["amount"]) for e in got["ledger"]] == [
        ("recharge", "2.2500"),
        ("initial", "12.5000"),
    ]
    with psycopg.connect(db_url) as c:
        audit = c.execute(
            "SELECT actor, action, before->>'balance', after->>'balance' FROM audit_log"
            " WHERE action = 'account.recharge'"
        ).fetchall()
    assert audit == [("token:alice", "account.recharge", "12.5000", "14.7500")]


def test_bad_input_changes_nothing(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", anis=["100001"])
    admin = seed.token("admin")
    plan = seed.plan([("51", "0.60")])
    cases = [
        ({"number": "1", "plan": plan, "type": "prepaid", "balance": "1.23456"}, 400),
        ({"number": "1", "plan": plan, "type": "prepaid", "balance": "NaN"}, 400),
        ({"number": "1", "plan": plan, "type": "gold"}, 400),
        ({"number": "1", "plan": "missing", "type": "prepaid"}, 404),
        ({"number": "100001", "plan": plan, "type": "prepaid"}, 409),
        ({"number": "2", "plan": plan, "type": "prepaid", "anis": ["100001"]}, 409),
    ]
    for body, status in cases:
        resp = client.post("/v1/accounts", json=body, headers=bearer(admin))
        assert resp.status_code == status, (body, resp.get_json())
        assert set(resp.get_json()["error"]) == {"code", "message", "details"}
    assert (
        client.post(
            "/v1/accounts/404404/recharges", json={"amount": "1"}, headers=bearer(admin)
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/v1/accounts/100001/recharges", json={"amount": "-5"}, headers=bearer(admin)
        ).status_code
        == 400
    )
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT count(*) FROM accounts").fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM ledger WHERE kind = 'recharge'").fetchone() == (0,)


def test_healthz_needs_no_credentials(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json()["checks"]["postgresql"] == "ok"
