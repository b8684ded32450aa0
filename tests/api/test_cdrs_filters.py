"""GET /v1/cdrs filters and keyset pages; GET /v1/cdrs/UUID with its ledger rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from reporting_helpers import add_cdr, bearer

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def calls(seed):  # type: ignore[no-untyped-def]
    """Six CDRs of two accounts; returns {name: uuid}."""
    seed.account("100001", balance="50")
    seed.account("200002", balance="50")
    url = seed.url
    made = {
        "early": add_cdr(url, account="100001", start=T - timedelta(days=2), billsec=60,
                         cost="0.6000", destination="5112345"),
        "busy": add_cdr(url, account="100001", start=T, hangup_cause="USER_BUSY",
                        destination="5198765"),
        "long": add_cdr(url, account="100001", start=T + timedelta(hours=1), billsec=600,
                        cost="6.0000", destination="5198765", caller="=cmd|' /C calc'!A0"),
        "other": add_cdr(url, account="200002", start=T + timedelta(hours=2), billsec=30,
                         cost="0.3000", destination="5211111", caller="200002"),
        "cucm": add_cdr(url, account="200002", start=T + timedelta(hours=3), billsec=90,
                        cost="0.9000", destination="5211111", caller="200002", source="cucm"),
        "nobody": add_cdr(url, account=None, start=T + timedelta(hours=4), billsec=10,
                          destination="4400", caller="999"),
    }  # fmt: skip
    return {name: uuid for name, (_, uuid) in made.items()}


def names(client, calls, qs: str, token: str) -> list[str]:  # type: ignore[no-untyped-def]
    resp = client.get(f"/v1/cdrs?{qs}", headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    by_uuid = {v: k for k, v in calls.items()}
    return [by_uuid[c["call_uuid"]] for c in resp.get_json()["cdrs"]]


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        ("", ["nobody", "cucm", "other", "long", "busy", "early"]),
        ("from=2026-03-01T00:00:00Z&to=2026-03-01T13:00:00Z", ["busy"]),
        ("from=2026-03-01", ["nobody", "cucm", "other", "long", "busy"]),
        ("account=200002", ["cucm", "other"]),
        ("caller=200002", ["cucm", "other"]),
        ("callee=5198765", ["long", "busy"]),
        ("destination=519", ["long", "busy"]),
        ("destination=%2B52", ["cucm", "other"]),
        ("hangup_cause=USER_BUSY", ["busy"]),
        ("answered=false", ["busy"]),
        ("answered=true&account=100001", ["long", "early"]),
        ("min_cost=0.9", ["cucm", "long"]),
        ("source=cucm", ["cucm"]),
        ("billing_status=unrated", ["nobody"]),
        ("account=100001&destination=519&min_cost=1", ["long"]),
    ],
)
def test_filters(client, seed, calls, qs, expected) -> None:  # type: ignore[no-untyped-def]
    assert names(client, calls, qs, seed.token("viewer")) == expected


@pytest.mark.parametrize(
    "qs",
    ["from=yesterday", "answered=maybe", "min_cost=1.00001", "min_cost=-1", "destination=51a",
     "limit=0", "limit=abc", "cursor=-5"],
)  # fmt: skip
def test_bad_filters_are_400(client, seed, calls, qs) -> None:  # type: ignore[no-untyped-def]
    resp = client.get(f"/v1/cdrs?{qs}", headers=bearer(seed.token("viewer")))
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "invalid_request"


def test_unknown_account_is_404(client, seed, calls) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/v1/cdrs?account=nope", headers=bearer(seed.token("viewer")))
    assert resp.status_code == 404


def test_keyset_pages_walk_every_row_once(client, seed, calls) -> None:  # type: ignore[no-untyped-def]
    token = seed.token("operator")
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        resp = client.get(f"/v1/cdrs?limit=4{cursor}", headers=bearer(token)).get_json()
        seen += [c["call_uuid"] for c in resp["cdrs"]]
        pages += 1
        if resp["next_cursor"] is None:
            break
        cursor = f"&cursor={resp['next_cursor']}"
    assert pages == 2
    assert sorted(seen) == sorted(calls.values()) and len(seen) == len(set(seen))
    # a page after the cursor starts below it even when new CDRs arrive meanwhile
    add_cdr(seed.url, account="100001", start=T, billsec=0)
    first = client.get("/v1/cdrs?limit=4", headers=bearer(token)).get_json()
    after = client.get(f"/v1/cdrs?limit=100&cursor={first['next_cursor']}",
                       headers=bearer(token)).get_json()  # fmt: skip
    assert len(first["cdrs"]) + len(after["cdrs"]) == 7


def test_one_call_with_its_ledger_rows(client, seed, calls) -> None:  # type: ignore[no-untyped-def]
    resp = client.get(f"/v1/cdrs/{calls['long']}", headers=bearer(seed.token("viewer")))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["call_uuid"] == calls["long"]
    (leg,) = body["legs"]
    assert (leg["account"], leg["cost"], leg["billsec"]) == ("100001", "6.0000", 600)
    assert [(e["kind"], e["amount"]) for e in leg["ledger"]] == [("call_charge", "-6.0000")]
    missing = client.get("/v1/cdrs/no-such-call", headers=bearer(seed.token("viewer")))
    assert missing.status_code == 404


def test_roles(client, seed, calls) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/cdrs").status_code == 401
    assert client.get(f"/v1/cdrs/{calls['long']}").status_code == 401
    assert client.get("/v1/cdrs/export.csv").status_code == 401
    switch = bearer(seed.token("switch"))
    assert client.get("/v1/cdrs", headers=switch).status_code == 403
    assert client.get("/v1/cdrs/export.csv", headers=switch).status_code == 403
