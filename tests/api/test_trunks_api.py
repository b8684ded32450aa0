"""/v1/trunks and SIP users on accounts: admin-only writes, audited, bad configurations refused
(clear error, nothing changed), overlaps refused by PostgreSQL itself even under a race."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from sidecar.errors import ApiError
from sidecar.services.trunks import create_trunk


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(db_url: str, action: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as c:
        return c.execute(
            "SELECT actor, target, before, after FROM audit_log WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()


def trunk_names(db_url: str) -> list[str]:
    with psycopg.connect(db_url) as c:
        return [r[0] for r in c.execute("SELECT name FROM trunks ORDER BY name")]


@pytest.fixture
def admin(seed) -> dict[str, str]:  # type: ignore[no-untyped-def]
    seed.account("700001")  # also declares the test PBX's trunk, 198.51.100.0/24
    return bearer(seed.token("admin", name="ops"))


CARRIER = {"name": "carrier-1", "cidrs": ["203.0.113.0/28", "2001:db8:1::/48"],
           "account": "700001"}  # fmt: skip


def test_create_list_delete_audited(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/v1/trunks", json=CARRIER, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert {k: created[k] for k in ("name", "cidrs", "account", "trust_caller_id",
                                    "trust_billing_header")} == {
        **CARRIER, "trust_caller_id": False, "trust_billing_header": False,
    }  # fmt: skip
    assert created["created_at"].endswith("Z")
    viewer = bearer(seed.token("viewer"))
    listed = client.get("/v1/trunks", headers=viewer).get_json()["trunks"]
    assert [t["name"] for t in listed] == ["carrier-1", "test-pbx"]
    [(actor, target, before, after)] = audit_rows(db_url, "trunk.create")[-1:]
    assert (actor, target, before) == ("token:ops", "trunk:carrier-1", None)
    assert after["cidrs"] == CARRIER["cidrs"] and after["account"] == "700001"

    resp = client.delete("/v1/trunks/carrier-1", headers=admin)
    assert resp.status_code == 200 and resp.get_json()["name"] == "carrier-1"
    [(actor, target, before, after)] = audit_rows(db_url, "trunk.delete")
    assert (target, after) == ("trunk:carrier-1", None) and before["cidrs"] == CARRIER["cidrs"]
    assert trunk_names(db_url) == ["test-pbx"]
    missing = client.delete("/v1/trunks/carrier-1", headers=admin)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "trunk_not_found"


def test_only_admins_write(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    operator = bearer(seed.token("operator"))
    assert client.post("/v1/trunks", json=CARRIER, headers=operator).status_code == 403
    assert client.delete("/v1/trunks/test-pbx", headers=operator).status_code == 403
    assert client.post("/v1/trunks", json=CARRIER).status_code == 401
    assert client.get("/v1/trunks").status_code == 401
    assert trunk_names(db_url) == ["test-pbx"]


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({"cidrs": ["203.0.113.0/25"]}, 409, "trunk_overlap", "overlaps 198.51.100.0/24"),
        ({"cidrs": ["198.51.100.128/25"]}, 409, "trunk_overlap", "trunk test-pbx"),
        ({"cidrs": ["203.0.113.0/24", "203.0.113.64/26"]}, 400, "invalid_request", "overlaps"),
        ({"cidrs": ["203.0.113.0/24", "203.0.113.0/24"]}, 400, "invalid_request", "overlaps"),
        ({"cidrs": ["203.0.113.7/24"]}, 400, "invalid_request", "did you mean 203.0.113.0/24"),
        ({"cidrs": ["0.0.0.0/0"]}, 400, "invalid_request", "every address"),
        ({"cidrs": ["::/0"]}, 400, "invalid_request", "every address"),
        ({"cidrs": ["pbx.example"]}, 400, "invalid_request", "not a CIDR"),
        ({"cidrs": []}, 400, "invalid_request", "at least one CIDR"),
        ({"cidrs": "203.0.113.0/24"}, 400, "invalid_request", "list of strings"),
        ({"account": "999999"}, 404, "account_not_found", "no account 999999"),
        ({"account": None}, 400, "invalid_request", "must bill someone"),
        ({"account": None, "trust_caller_id": "yes"}, 400, "invalid_request", "true or false"),
        ({"name": "bad name"}, 400, "invalid_request", "name must be"),
        ({"name": "test-pbx"}, 409, "trunk_exists", "already exists"),
        ({"note": "x"}, 400, "invalid_request", "unknown fields"),
    ],
)
def test_bad_configurations_are_refused(client, admin, db_url, body, status, code, says) -> None:  # type: ignore[no-untyped-def]
    base = {"name": "new", "cidrs": ["203.0.113.0/24"], "account": "700001"}
    if body.get("cidrs") == ["203.0.113.0/25"]:  # overlap an existing trunk other than test-pbx
        ok = client.post("/v1/trunks", json={**base, "name": "old", "cidrs": ["203.0.113.0/26"]},
                         headers=admin)  # fmt: skip
        assert ok.status_code == 201
        says = "overlaps 203.0.113.0/26 of trunk old"
    before = trunk_names(db_url)
    resp = client.post("/v1/trunks", json={**base, **body}, headers=admin)
    assert resp.status_code == status, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == code and says in error["message"], error
    assert trunk_names(db_url) == before
    if code == "trunk_overlap":
        assert error["details"]["overlaps"][0]["trunk"] in ("old", "test-pbx")


def test_trusted_sources_without_an_account_are_a_valid_trunk(client, admin) -> None:  # type: ignore[no-untyped-def]
    for name, flag in (("by-ani", "trust_caller_id"), ("by-header", "trust_billing_header")):
        cidr = "203.0.113.0/28" if name == "by-ani" else "203.0.113.16/28"
        body = {"name": name, "cidrs": [cidr], flag: True}
        resp = client.post("/v1/trunks", json=body, headers=admin)
        assert resp.status_code == 201 and resp.get_json()["account"] is None


def test_postgresql_refuses_overlaps_on_its_own(seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(db_url) as c, pytest.raises(psycopg.errors.ExclusionViolation):
        c.execute("INSERT INTO trunks (name, trust_caller_id) VALUES ('raw', true)")
        c.execute("INSERT INTO trunk_cidrs SELECT id, '198.51.100.77/32' FROM trunks"
                  " WHERE name = 'raw'")  # fmt: skip
    with psycopg.connect(db_url) as c, pytest.raises(psycopg.errors.CheckViolation):
        c.execute("INSERT INTO trunks (name) VALUES ('bills-nobody')")


def test_two_admins_declaring_overlapping_trunks_at_once(seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    """The second waits on the first's uncommitted CIDR, then is refused, not stored."""
    first = psycopg.connect(db_url, row_factory=psycopg.rows.dict_row)
    create_trunk(first, actor="a", name="first", cidrs=["10.0.0.0/8"], account="700001")
    outcome: list[object] = []

    def second() -> None:
        with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as c:
            try:
                create_trunk(c, actor="b", name="second", cidrs=["10.1.0.0/16"], account="700001")
                c.commit()
                outcome.append("created")
            except ApiError as exc:
                outcome.append((exc.status, exc.code))

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive()  # blocked on the first transaction's row
    first.commit()
    first.close()
    thread.join(10)
    assert outcome == [(409, "trunk_overlap")]
    assert trunk_names(db_url) == ["first", "test-pbx"]


# ------------------------------------------------------------------ SIP users of accounts


def test_sip_users_are_unique_validated_and_audited(client, seed, admin, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("700002")
    resp = client.patch("/v1/accounts/700001", json={"sip_users": ["1001@PBX.example",
                        "1002@pbx.example"]}, headers=admin)  # fmt: skip
    assert resp.status_code == 200
    assert resp.get_json()["sip_users"] == ["1001@pbx.example", "1002@pbx.example"]
    (_, target, before, after) = audit_rows(db_url, "account.update")[-1]
    assert (target, before["sip_users"], after["sip_users"]) == (
        "account:700001", [], ["1001@pbx.example", "1002@pbx.example"],
    )  # fmt: skip
    taken = client.patch("/v1/accounts/700002", json={"sip_users": ["1001@pbx.example"]},
                         headers=admin)  # fmt: skip
    assert taken.status_code == 409
    assert taken.get_json()["error"]["details"] == {"sip_users": ["1001@pbx.example"]}
    for bad in (["1001"], ["a b@pbx.example"], "1001@pbx.example", [7]):
        resp = client.patch("/v1/accounts/700002", json={"sip_users": bad}, headers=admin)
        assert resp.status_code == 400, bad
    created = client.post("/v1/accounts", headers=admin, json={
        "number": "700003", "plan": seed.plan(), "type": "prepaid",
        "sip_users": ["2001@pbx.example"]})  # fmt: skip
    assert created.status_code == 201 and created.get_json()["sip_users"] == ["2001@pbx.example"]
    cleared = client.patch("/v1/accounts/700001", json={"sip_users": []}, headers=admin)
    assert cleared.get_json()["sip_users"] == []
    viewer = bearer(seed.token("viewer"))
    listed = client.get("/v1/accounts?q=7000", headers=viewer).get_json()["accounts"]
    assert {a["number"]: a["sip_users"] for a in listed} == {
        "700001": [], "700002": [], "700003": ["2001@pbx.example"],
    }  # fmt: skip
