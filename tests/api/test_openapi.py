"""/v1/openapi.json describes every route of the app, and only routes that exist."""

from __future__ import annotations

import re

import pytest
from test_access import register_all_blueprints

from sidecar.api.openapi import OPERATIONS, UNDESCRIBED_ENDPOINTS, openapi_path


@pytest.fixture
def full_app(app):  # type: ignore[no-untyped-def]
    return register_all_blueprints(app)


def app_operations(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDESCRIBED_ENDPOINTS or rule.endpoint.startswith("web."):
            continue
        path, _ = openapi_path(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def served(full_app, seed) -> dict:  # type: ignore[no-untyped-def, type-arg]
    token = seed.token("viewer")
    resp = full_app.test_client().get(
        "/v1/openapi.json", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200
    return resp.get_json()  # type: ignore[no-any-return]


def test_every_route_is_described_and_every_description_is_a_route(full_app) -> None:  # type: ignore[no-untyped-def]
    routes = app_operations(full_app)
    undescribed = sorted(routes - set(OPERATIONS))
    stale = sorted(set(OPERATIONS) - routes)
    assert undescribed == [], f"routes without an entry in sidecar.api.openapi: {undescribed}"
    assert stale == [], f"described operations that no route serves: {stale}"
    for key, operation in OPERATIONS.items():
        assert operation.get("summary"), key


def test_served_document(full_app, seed) -> None:  # type: ignore[no-untyped-def]
    doc = served(full_app, seed)
    assert doc["openapi"].startswith("3.1")
    described = {(p, m) for p, methods in doc["paths"].items() for m in methods}
    assert described == app_operations(full_app)
    assert "/freeswitch/cdr" in doc["paths"] and "/v1/openapi.json" in doc["paths"]
    operation_ids = []
    for path, methods in doc["paths"].items():
        placeholders = re.findall(r"{([^}]+)}", path)
        for method, op in methods.items():
            operation_ids.append(op["operationId"])
            path_params = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            assert path_params == placeholders, (path, method)
            assert "2XX" in op["responses"] and op["summary"]
            rule_roles = op["x-apolo-roles"]
            if (path, method) in (
                ("/healthz", "get"),
                ("/metrics", "get"),
                ("/v1/session", "post"),
            ):
                assert op["security"] == [] and rule_roles == []
            else:
                assert rule_roles, (path, method)
                assert {"401", "403"} <= set(op["responses"]), (path, method)
                schemes = {name for s in op["security"] for name in s}
                assert ("freeswitchBasic" in schemes) == ("switch" in rule_roles), (path, method)
    assert len(operation_ids) == len(set(operation_ids))
    recharge = doc["paths"]["/v1/accounts/{number}/recharges"]["post"]
    assert recharge["x-apolo-roles"] == ["admin", "operator"]
    assert any(p["name"] == "Idempotency-Key" for p in recharge["parameters"])
    assert doc["paths"]["/v1/rates/{rate_id}"]["get"]["parameters"][0]["schema"]["type"] == (
        "integer"
    )
    refs = re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', str(doc).replace("'", '"'))
    for section, name in refs:
        assert name in doc["components"][section]


def test_openapi_needs_credentials(full_app, seed) -> None:  # type: ignore[no-untyped-def]
    client = full_app.test_client()
    assert client.get("/v1/openapi.json").status_code == 401
    switch = seed.token("switch")
    resp = client.get("/v1/openapi.json", headers={"Authorization": f"Bearer {switch}"})
    assert resp.status_code == 403
