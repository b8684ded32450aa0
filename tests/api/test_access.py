"""Access control of every route (401 without credentials, 403 for the wrong role) and the
FreeSWITCH source-address allowlist, with and without a trusted reverse proxy."""

from __future__ import annotations

import importlib
import ipaddress
import pkgutil
import re

import pytest
from conftest import FS_AUTH, call_body

import sidecar.api
from sidecar.auth import ROLES, SWITCH, client_address, load_access_settings, parse_networks

# /healthz (and /metrics when it exists) are open; the login takes its credentials in the
# body and is checked on its own below
PUBLIC = {"health.healthz", "metrics.metrics", "static", "session.login"}


def register_all_blueprints(app):  # type: ignore[no-untyped-def]
    """The app as the lead assembles it: every blueprint of sidecar.api, registered once."""
    for info in pkgutil.iter_modules(sidecar.api.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"sidecar.api.{info.name}")
        bp = getattr(module, "bp", None)
        if bp is not None and bp.name not in app.blueprints:
            app.register_blueprint(bp)
    return app


@pytest.fixture
def full_app(app):  # type: ignore[no-untyped-def]
    return register_all_blueprints(app)


def concrete(rule: str) -> str:
    return re.sub(r"<(?:int:)?[a-z_]+>", lambda m: "1" if "int:" in m.group(0) else "100001", rule)


def operations(app) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, concrete(rule.rule)))
    return sorted(found)


def test_every_route_needs_credentials_and_the_right_role(full_app, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    client = full_app.test_client()
    tokens = {role: seed.token(role, name=f"t-{role}") for role in ROLES}
    checked = 0
    for endpoint, method, url in operations(full_app):
        # dashboard pages redirect to their login form instead (tests/api/test_web_access.py)
        if endpoint in PUBLIC or endpoint.endswith(".metrics") or endpoint.startswith("web."):
            continue
        roles = getattr(full_app.view_functions[endpoint], "apolo_roles", None)
        assert roles, f"{endpoint} is not protected by sidecar.auth.require"
        resp = client.open(url, method=method)
        assert resp.status_code == 401, (endpoint, method, resp.status_code)
        assert resp.get_json()["error"]["code"] == "unauthorized"
        assert "WWW-Authenticate" in resp.headers
        resp = client.open(url, method=method, headers={"Authorization": "Bearer apo_forged"})
        assert resp.status_code == 401, (endpoint, "forged token")
        resp = client.open(url, method=method, auth=("freeswitch", "wrong-password"))
        assert resp.status_code == 401, (endpoint, "wrong FreeSWITCH password")
        for role in ROLES:
            headers = {"Authorization": f"Bearer {tokens[role]}"}
            resp = client.open(url, method=method, headers=headers)
            if url.startswith("/freeswitch/"):  # FreeSWITCH's basic-auth credentials only
                assert resp.status_code == 401, (endpoint, method, role, resp.status_code)
                assert resp.headers["WWW-Authenticate"].startswith("Basic")
            elif role in roles:
                assert resp.status_code not in (401, 403), (endpoint, method, role)
            else:
                assert resp.status_code == 403, (endpoint, method, role, resp.status_code)
                assert resp.get_json()["error"]["code"] == "forbidden"
        # FreeSWITCH's basic-auth credentials are the switch role: refused on admin routes
        resp = client.open(url, method=method, auth=FS_AUTH)
        expected_ok = SWITCH in roles
        assert (resp.status_code not in (401, 403)) == expected_ok, (endpoint, method, "fs")
        checked += 1
    assert checked >= 10


def test_public_routes_need_nothing(full_app) -> None:  # type: ignore[no-untyped-def]
    client = full_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/session").status_code == 415  # JSON only (login CSRF)
    assert client.post("/v1/session", json={"username": "x"}).status_code == 401


def test_revoked_token_is_refused(client, seed) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    seed.account("100001")
    token = seed.token("viewer", name="gone")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/accounts/100001", headers=headers).status_code == 200
    with psycopg.connect(seed.url) as c:
        c.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'gone'")
        c.commit()
    assert client.get("/v1/accounts/100001", headers=headers).status_code == 401


# ------------------------------------------------------------------ source allowlist

CALL = call_body("u-allow-1", "100001", "5119999")


def allow(app, fs_allow: str, trusted: str = "") -> None:  # type: ignore[no-untyped-def]
    app.extensions["apolo_access"] = load_access_settings(
        {"APOLO_FS_ALLOW": fs_allow, "APOLO_TRUSTED_PROXIES": trusted}
    )


def test_allowlist_limits_freeswitch_routes_and_switch_role(app, client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    allow(app, "10.0.0.0/8, 2001:db8::/32")
    inside = {"REMOTE_ADDR": "10.20.30.40"}
    # the test client's peer is 127.0.0.1: refused even before credentials are looked at
    for auth in (FS_AUTH, None):
        resp = client.post("/freeswitch/dialplan", data={}, auth=auth)
        assert resp.status_code == 403 and resp.get_json()["error"]["code"] == (
            "address_not_allowed"
        )
    resp = client.post("/v1/authorize", json=CALL, auth=FS_AUTH)
    assert resp.status_code == 403
    switch_token = {"Authorization": f"Bearer {seed.token('switch')}"}
    assert client.post("/v1/authorize", json=CALL, headers=switch_token).status_code == 403
    # from a listed address the same requests go through
    resp = client.post("/v1/authorize", json=CALL, auth=FS_AUTH, environ_base=inside)
    assert resp.status_code == 200 and resp.get_json()["authorized"] is True
    resp = client.post(
        "/v1/authorize",
        json={**CALL, "uuid": "u-allow-v6"},
        auth=FS_AUTH,
        environ_base={"REMOTE_ADDR": "2001:db8::7"},
    )
    assert resp.status_code == 200
    # a listed address still needs the credentials
    resp = client.post("/freeswitch/dialplan", data={}, environ_base=inside)
    assert resp.status_code == 401
    # admins (not the switch role) may authorize from anywhere; viewers see accounts
    admin = {"Authorization": f"Bearer {seed.token('admin')}"}
    resp = client.post("/v1/authorize", json={**CALL, "uuid": "u-allow-2"}, headers=admin)
    assert resp.status_code == 200
    viewer = {"Authorization": f"Bearer {seed.token('viewer')}"}
    assert client.get("/v1/accounts/100001", headers=viewer).status_code == 200


def test_forwarded_for_counts_only_from_a_trusted_proxy(app, client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    allow(app, "10.0.0.0/8")
    spoofed = {"X-Forwarded-For": "10.1.1.1"}
    resp = client.post("/v1/authorize", json=CALL, auth=FS_AUTH, headers=spoofed)
    assert resp.status_code == 403  # the peer 127.0.0.1 is no proxy of ours
    allow(app, "10.0.0.0/8", trusted="127.0.0.1/32")
    resp = client.post("/v1/authorize", json=CALL, auth=FS_AUTH, headers=spoofed)
    assert resp.status_code == 200
    # the proxy appends the real peer: a client-written first entry does not help
    appended = {"X-Forwarded-For": "10.1.1.1, 192.0.2.50"}
    resp = client.post("/v1/authorize", json=CALL, auth=FS_AUTH, headers=appended)
    assert resp.status_code == 403
    # behind the proxy with no header the peer (the proxy) is the client: not listed
    assert client.post("/v1/authorize", json=CALL, auth=FS_AUTH).status_code == 403


def net(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return parse_networks(text, "TEST")


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        ("10.0.0.5", None, "", "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4", "", "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "1.2.3.4, 10.0.0.9", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "9.9.9.9, 1.2.3.4", "10.0.0.0/8", "1.2.3.4"),
        ("10.0.0.5", "10.0.0.7", "10.0.0.0/8", "10.0.0.7"),
        ("10.0.0.5", "junk", "10.0.0.0/8", None),
        ("::ffff:10.0.0.5", None, "", "10.0.0.5"),
        ("", None, "", None),
    ],
)
def test_client_address(peer: str, header: str | None, trusted: str, expected: str | None) -> None:
    found = client_address(peer, header, net(trusted))
    assert (str(found) if found is not None else None) == expected


def test_bad_allowlist_is_refused() -> None:
    with pytest.raises(ValueError, match="APOLO_FS_ALLOW"):
        load_access_settings({"APOLO_FS_ALLOW": "10.0.0.0/33"})
    with pytest.raises(ValueError, match="APOLO_TRUSTED_PROXIES"):
        load_access_settings({"APOLO_TRUSTED_PROXIES": "proxy.example"})
    assert load_access_settings({}).fs_allow == ()
