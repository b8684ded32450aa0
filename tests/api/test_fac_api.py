"""/v1/fac: Forced Authorization Codes, admin only, audited, never stored or shown in clear."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import psycopg
import pytest
from conftest import Seed
from psycopg.rows import dict_row

from sidecar.api import cucm as cucm_api
from sidecar.api import fac as fac_api

FAC_KEY = "fac-api-test-key-fedcba9876543210"


@pytest.fixture
def fac_client(app, seed: Seed, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("APOLO_FAC_KEY", FAC_KEY)
    for module in (cucm_api, fac_api):
        if module.bp.name not in app.blueprints:
            app.register_blueprint(module.bp)
    return app.test_client()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _db(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def test_create_stores_only_the_hmac_and_audits_without_the_code(
    fac_client, seed: Seed, db_url: str
) -> None:
    seed.account("800100")
    admin = seed.token("admin")
    resp = fac_client.post(
        "/v1/fac",
        json={"code": "90817263", "name": "Legal dept", "level": 3, "account": "800100"},
        headers=_auth(admin),
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "******63" and body["last_digits"] == "63"
    assert (body["name"], body["level"], body["account"]) == ("Legal dept", 3, "800100")
    assert "90817263" not in resp.get_data(as_text=True)
    row = _db(db_url, "SELECT * FROM fac_codes")[0]
    assert row["code_hmac"] == hmac.new(FAC_KEY.encode(), b"90817263", hashlib.sha256).hexdigest()
    audit = _db(db_url, "SELECT * FROM audit_log WHERE action = 'fac.create'")
    assert len(audit) == 1 and audit[0]["actor"] == "token:test"
    assert audit[0]["before"] is None and audit[0]["after"]["name"] == "Legal dept"
    assert "90817263" not in str(_db(db_url, "SELECT * FROM audit_log"))


def test_create_is_refused_without_the_key(
    fac_client, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed.account("800100")
    admin = seed.token("admin")
    for value in (None, "too-short"):
        if value is None:
            monkeypatch.delenv("APOLO_FAC_KEY")
        else:
            monkeypatch.setenv("APOLO_FAC_KEY", value)
        resp = fac_client.post(
            "/v1/fac", json={"code": "1234", "name": "n", "account": "800100"}, headers=_auth(admin)
        )
        assert resp.status_code == 503
        assert resp.get_json()["error"]["code"] == "fac_key_missing"
        assert "APOLO_FAC_KEY" in resp.get_json()["error"]["message"]
    assert _db(db_url, "SELECT count(*) AS n FROM fac_codes")[0]["n"] == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"code": "12a4", "name": "n", "account": "800100"}, 400),
        ({"code": 1234, "name": "n", "account": "800100"}, 400),
        ({"code": "12345678901234567", "name": "n", "account": "800100"}, 400),
        ({"code": "1234", "name": "", "account": "800100"}, 400),
        ({"code": "1234", "name": "n", "level": 256, "account": "800100"}, 400),
        ({"code": "1234", "name": "n", "level": True, "account": "800100"}, 400),
        ({"code": "1234", "name": "n", "account": "999"}, 404),
        ({"code": "1234", "name": "n"}, 400),
    ],
)
def test_bad_input_changes_nothing(
    fac_client, seed: Seed, db_url: str, body: dict[str, Any], status: int
) -> None:
    seed.account("800100")
    resp = fac_client.post("/v1/fac", json=body, headers=_auth(seed.token("admin")))
    assert resp.status_code == status
    assert _db(db_url, "SELECT count(*) AS n FROM fac_codes")[0]["n"] == 0
    assert (
        _db(db_url, "SELECT count(*) AS n FROM audit_log WHERE action LIKE 'fac.%%'", ())[0]["n"]
        == 0
    )


def test_a_code_or_name_twice_is_a_conflict(fac_client, seed: Seed) -> None:
    seed.account("800100")
    admin = seed.token("admin")
    first = {"code": "4444", "name": "A", "account": "800100"}
    assert fac_client.post("/v1/fac", json=first, headers=_auth(admin)).status_code == 201
    same_code = fac_client.post("/v1/fac", json={**first, "name": "B"}, headers=_auth(admin))
    same_name = fac_client.post("/v1/fac", json={**first, "code": "5555"}, headers=_auth(admin))
    assert (same_code.status_code, same_name.status_code) == (409, 409)


def test_only_admins_manage_codes(fac_client, seed: Seed) -> None:
    seed.account("800100")
    body = {"code": "4444", "name": "A", "account": "800100"}
    for role in ("operator", "viewer", "switch"):
        token = seed.token(role)
        assert fac_client.post("/v1/fac", json=body, headers=_auth(token)).status_code == 403
        assert fac_client.get("/v1/fac", headers=_auth(token)).status_code == 403
    assert fac_client.get("/v1/fac").status_code == 401


def test_list_get_update_delete_are_audited(fac_client, seed: Seed, db_url: str) -> None:
    seed.account("800100")
    seed.account("800200")
    admin = _auth(seed.token("admin"))
    created = fac_client.post(
        "/v1/fac", json={"code": "31337", "name": "Ops", "account": "800100"}, headers=admin
    ).get_json()
    fac_id = created["id"]
    listed = fac_client.get("/v1/fac?account=800100", headers=admin).get_json()["fac"]
    assert [f["id"] for f in listed] == [fac_id]
    assert fac_client.get("/v1/fac?account=800200", headers=admin).get_json()["fac"] == []

    changed = fac_client.patch(
        f"/v1/fac/{fac_id}", json={"name": "Ops night", "level": 2, "account": "800200"},
        headers=admin,
    )  # fmt: skip
    assert changed.status_code == 200
    assert (changed.get_json()["name"], changed.get_json()["account"]) == ("Ops night", "800200")
    refused = fac_client.patch(f"/v1/fac/{fac_id}", json={"code": "1"}, headers=admin)
    assert refused.status_code == 400
    assert fac_client.get(f"/v1/fac/{fac_id}", headers=admin).get_json()["level"] == 2

    assert fac_client.delete(f"/v1/fac/{fac_id}", headers=admin).status_code == 200
    assert fac_client.get(f"/v1/fac/{fac_id}", headers=admin).status_code == 404
    assert fac_client.delete(f"/v1/fac/{fac_id}", headers=admin).status_code == 404
    audit = _db(db_url, "SELECT action, before, after FROM audit_log WHERE target = %s ORDER BY id",
                (f"fac:{fac_id}",))  # fmt: skip
    assert [a["action"] for a in audit] == ["fac.create", "fac.update", "fac.delete"]
    assert audit[1]["before"]["account"] == "800100" and audit[1]["after"]["account"] == "800200"
    assert audit[2]["before"]["name"] == "Ops night" and audit[2]["after"] is None
