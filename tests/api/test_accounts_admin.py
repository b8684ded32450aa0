"""Accounts admin API: list with filters and keyset pages, update, suspend/reactivate, audit."""

from __future__ import annotations

import psycopg
import pytest


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(db_url: str, action: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db_url) as c:
        return c.execute(
            "SELECT actor, target, before, after FROM audit_log WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()


@pytest.fixture
def accounts(seed):  # type: ignore[no-untyped-def]
    gold = seed.plan([("51", "0.60")])
    basic = seed.plan([("51", "0.90")])
    seed.account("100001", plan=gold)
    seed.account("100002", plan=basic, type="postpaid", credit_limit="50")
    seed.account("100003", plan=gold, status="suspended")
    seed.account("200001", plan=basic)
    seed.account("200002", plan=gold, type="postpaid")
    with psycopg.connect(seed.url) as c:
        c.execute("UPDATE accounts SET name = 'ACME Corp' WHERE number = '100002'")
        c.execute("UPDATE accounts SET name = 'Acme labs' WHERE number = '200002'")
        c.commit()
    return {"gold": gold, "basic": basic}


def numbers(resp) -> list[str]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.get_json()
    return [a["number"] for a in resp.get_json()["accounts"]]


def test_list_filters(client, seed, accounts) -> None:  # type: ignore[no-untyped-def]
    viewer = bearer(seed.token("viewer"))
    assert numbers(client.get("/v1/accounts", headers=viewer)) == [
        "100001",
        "100002",
        "100003",
        "200001",
        "200002",
    ]
    assert numbers(client.get("/v1/accounts?status=suspended", headers=viewer)) == ["100003"]
    assert numbers(client.get("/v1/accounts?type=postpaid", headers=viewer)) == [
        "100002",
        "200002",
    ]
    plan = accounts["basic"]
    assert numbers(client.get(f"/v1/accounts?plan={plan}", headers=viewer)) == [
        "100002",
        "200001",
    ]
    assert numbers(client.get("/v1/accounts?q=acme", headers=viewer)) == ["100002", "200002"]
    assert numbers(client.get("/v1/accounts?q=2000", headers=viewer)) == ["200001", "200002"]
    # LIKE wildcards in the search are literal
    assert numbers(client.get("/v1/accounts?q=%25", headers=viewer)) == []
    assert numbers(client.get("/v1/accounts?q=_", headers=viewer)) == []
    one = client.get("/v1/accounts?q=100002", headers=viewer).get_json()["accounts"][0]
    assert one["type"] == "postpaid" and one["available"] == "60.0000"
    assert one["anis"] == ["100002"] and one["low_balance_threshold"] is None
    for bad in ("status=gone", "type=gold", "limit=0", "limit=501", "limit=x"):
        resp = client.get(f"/v1/accounts?{bad}", headers=viewer)
        assert resp.status_code == 400, bad
        assert resp.get_json()["error"]["code"] == "invalid_request"


def test_keyset_pagination_visits_every_account_once(client, seed, accounts) -> None:  # type: ignore[no-untyped-def]
    viewer = bearer(seed.token("viewer"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        url = "/v1/accounts?limit=2" + (f"&after={cursor}" if cursor else "")
        page = client.get(url, headers=viewer).get_json()
        seen += [a["number"] for a in page["accounts"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
        # an account created behind the cursor does not shift the following pages
        if pages == 1:
            seed.account("000001")
    assert pages == 3
    assert seen == ["100001", "100002", "100003", "200001", "200002"]
    filtered = client.get("/v1/accounts?limit=1&type=postpaid", headers=viewer).get_json()
    assert [a["number"] for a in filtered["accounts"]] == ["100002"]
    assert filtered["next"] == "100002"
    rest = client.get("/v1/accounts?limit=1&type=postpaid&after=100002", headers=viewer)
    assert numbers(rest) == ["200002"] and rest.get_json()["next"] is None


def test_update_every_field_audited(client, seed, accounts, db_url) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin", name="root"))
    change = {
        "name": " Acme North ",
        "plan": accounts["basic"],
        "type": "postpaid",
        "credit_limit": "25.50",
        "status": "suspended",
        "anis": ["5551000", "100001", "5551000"],
        "max_calls": 4,
        "low_balance_threshold": "2.5",
    }
    resp = client.patch("/v1/accounts/100001", json=change, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    got = client.get("/v1/accounts/100001", headers=admin).get_json()
    assert {k: got[k] for k in change} == {
        "name": "Acme North",
        "plan": accounts["basic"],
        "type": "postpaid",
        "credit_limit": "25.5000",
        "status": "suspended",
        "anis": ["100001", "5551000"],
        "max_calls": 4,
        "low_balance_threshold": "2.5000",
    }
    assert got["available"] == "35.5000"
    [(actor, target, before, after)] = audit_rows(db_url, "account.update")
    assert (actor, target) == ("token:root", "account:100001")
    assert before["plan"] == accounts["gold"] and before["status"] == "active"
    assert after["max_calls"] == 4 and after["anis"] == ["100001", "5551000"]
    # clearing optional limits, dropping an ANI
    resp = client.patch(
        "/v1/accounts/100001",
        json={"max_calls": None, "low_balance_threshold": None, "anis": ["5551000"]},
        headers=admin,
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["max_calls"] is None and body["low_balance_threshold"] is None
    assert body["anis"] == ["5551000"]
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT count(*) FROM account_anis WHERE ani = '100001'").fetchone() == (
            0,
        )


def test_bad_updates_change_nothing(client, seed, accounts, db_url) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin"))
    with psycopg.connect(db_url) as c:
        before = c.execute("SELECT * FROM accounts ORDER BY id").fetchall()
    cases = [
        ({}, 400),
        ({"balance": "100"}, 400),  # money moves only through recharges
        ({"type": "gold"}, 400),
        ({"status": "deleted"}, 400),
        ({"credit_limit": "-1"}, 400),
        ({"max_calls": 0}, 400),
        ({"max_calls": "3"}, 400),
        ({"anis": "100001"}, 400),
        ({"anis": [""]}, 400),
        ({"plan": "missing"}, 404),
        ({"anis": ["100002"], "max_calls": 2}, 409),  # another account's ANI
        ({"low_balance_threshold": "1.00001"}, 400),
        ({"credit_limit": "1e20"}, 400),
    ]
    for body, status in cases:
        resp = client.patch("/v1/accounts/100001", json=body, headers=admin)
        assert resp.status_code == status, (body, resp.get_json())
        assert set(resp.get_json()["error"]) == {"code", "message", "details"}
    assert client.patch("/v1/accounts/999", json={"name": "x"}, headers=admin).status_code == 404
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT * FROM accounts ORDER BY id").fetchall() == before
        assert c.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'account.update'"
        ).fetchone() == (0,)


def test_max_call_cost_is_set_audited_and_cleared(client, seed, accounts, db_url) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin", name="root"))

    def stored() -> object:
        with psycopg.connect(db_url) as c:
            row = c.execute("SELECT max_call_cost FROM accounts WHERE number = '100001'")
            return row.fetchone()[0]  # type: ignore[index]

    for bad in ("0", "-1.00", "1.00001", "abc", "1e20"):
        resp = client.patch("/v1/accounts/100001", json={"max_call_cost": bad}, headers=admin)
        assert resp.status_code == 400, (bad, resp.get_json())
    assert stored() is None and audit_rows(db_url, "account.update") == []
    viewer = bearer(seed.token("viewer"))
    resp = client.patch("/v1/accounts/100001", json={"max_call_cost": "2"}, headers=viewer)
    assert resp.status_code == 403 and stored() is None

    resp = client.patch("/v1/accounts/100001", json={"max_call_cost": "2.50"}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["max_call_cost"] == "2.5000"
    assert str(stored()) == "2.5000"
    resp = client.patch("/v1/accounts/100001", json={"max_call_cost": None}, headers=admin)
    assert resp.status_code == 200 and resp.get_json()["max_call_cost"] is None
    assert stored() is None
    rows = audit_rows(db_url, "account.update")
    assert [(r[0], r[1]) for r in rows] == [("token:root", "account:100001")] * 2
    assert rows[0][2]["max_call_cost"] is None and rows[0][3]["max_call_cost"] == "2.5000"  # type: ignore[index]
    assert rows[1][2]["max_call_cost"] == "2.5000" and rows[1][3]["max_call_cost"] is None  # type: ignore[index]


def test_suspend_and_reactivate(client, seed, accounts, db_url) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin", name="root"))
    operator = bearer(seed.token("operator"))
    assert client.post("/v1/accounts/100001/suspend", headers=operator).status_code == 403
    resp = client.post("/v1/accounts/100001/suspend", headers=admin)
    assert resp.status_code == 200 and resp.get_json()["status"] == "suspended"
    # suspending again changes nothing and audits nothing
    assert client.post("/v1/accounts/100001/suspend", headers=admin).status_code == 200
    resp = client.post("/v1/accounts/100001/reactivate", headers=admin)
    assert resp.status_code == 200 and resp.get_json()["status"] == "active"
    assert [
        (r[1], r[2]["status"], r[3]["status"]) for r in audit_rows(db_url, "account.suspend")
    ] == [("account:100001", "active", "suspended")]
    assert [(r[2]["status"], r[3]["status"]) for r in audit_rows(db_url, "account.reactivate")] == [
        ("suspended", "active")
    ]
    client.patch("/v1/accounts/200001", json={"status": "closed"}, headers=admin)
    resp = client.post("/v1/accounts/200001/reactivate", headers=admin)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "account_closed"
    assert client.post("/v1/accounts/404/suspend", headers=admin).status_code == 404


def test_suspended_account_is_refused_calls(client, seed, accounts) -> None:  # type: ignore[no-untyped-def]
    from conftest import FS_AUTH, call_body

    admin = bearer(seed.token("admin"))
    call = call_body("u-susp-1", "100001", "5119999")
    client.post("/v1/accounts/100001/suspend", headers=admin)
    resp = client.post("/v1/authorize", json=call, auth=FS_AUTH)
    assert resp.status_code == 200 and resp.get_json()["reason"] == "account_suspended"
    client.post("/v1/accounts/100001/reactivate", headers=admin)
    resp = client.post("/v1/authorize", json={**call, "uuid": "u-susp-2"}, auth=FS_AUTH)
    assert resp.get_json()["authorized"] is True


def test_create_with_low_balance_threshold(client, seed, accounts) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin"))
    body = {"number": "300001", "plan": accounts["gold"], "type": "prepaid"}
    resp = client.post("/v1/accounts", json={**body, "low_balance_threshold": "3"}, headers=admin)
    assert resp.status_code == 201 and resp.get_json()["low_balance_threshold"] == "3.0000"
    for bad in ({"anis": [" "]}, {"balance": "1e20"}, {"credit_limit": "123456789012345"}):
        resp = client.post("/v1/accounts", json={**body, "number": "300002", **bad}, headers=admin)
        assert resp.status_code == 400, bad
    assert client.get("/v1/accounts/300002", headers=admin).status_code == 404
