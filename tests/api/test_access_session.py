"""Dashboard sessions: login cookie, CSRF on state changes, logout, failed-login limits."""

from __future__ import annotations

import psycopg
import pytest
from test_access import register_all_blueprints

from sidecar.auth import SESSION_COOKIE, hash_password, load_access_settings
from sidecar.repo import users as users_repo

PASSWORD = "correct horse battery staple"
HTTPS = "https://localhost"


@pytest.fixture
def site(app, clean, db_url):  # type: ignore[no-untyped-def]
    # conftest's `clean` predates sql/004_access.sql and does not empty its tables
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("TRUNCATE users, user_sessions, login_failures CASCADE")
    register_all_blueprints(app)
    app.extensions["apolo_access"] = load_access_settings(
        {"APOLO_LOGIN_MAX_FAILURES": "3", "APOLO_LOGIN_MAX_FAILURES_PER_ADDRESS": "5"}
    )
    return app


def make_user(db_url: str, username: str, role: str, password: str = PASSWORD) -> None:
    from psycopg.rows import dict_row

    with psycopg.connect(db_url, row_factory=dict_row) as c:
        users_repo.create(c, username, role, hash_password(password))
        c.commit()


def login(client, username: str, password: str = PASSWORD, **environ: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/session",
        json={"username": username, "password": password},
        base_url=HTTPS,
        environ_base=environ,
    )


def test_login_sets_a_safe_cookie_and_roles_apply(site, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="1")
    make_user(db_url, "olga", "operator")
    client = site.test_client()
    resp = login(client, "olga")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["role"] == "operator" and len(body["csrf_token"]) >= 32
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    with psycopg.connect(db_url) as c:
        stored = c.execute("SELECT token_hash FROM user_sessions").fetchall()
    assert len(stored) == 1 and value not in stored[0][0]
    # the cookie authenticates reads
    got = client.get("/v1/accounts/100001", base_url=HTTPS)
    assert got.status_code == 200
    who = client.get("/v1/session", base_url=HTTPS).get_json()
    assert who["actor"] == "user:olga" and who["csrf_token"] == body["csrf_token"]
    # state changes need the CSRF token
    recharge = {"amount": "2"}
    resp = client.post("/v1/accounts/100001/recharges", json=recharge, base_url=HTTPS)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "csrf_failed"
    resp = client.post(
        "/v1/accounts/100001/recharges",
        json=recharge,
        base_url=HTTPS,
        headers={"X-CSRF-Token": "wrong"},
    )
    assert resp.status_code == 403
    csrf = {"X-CSRF-Token": body["csrf_token"]}
    resp = client.post("/v1/accounts/100001/recharges", json=recharge, base_url=HTTPS, headers=csrf)
    assert resp.status_code == 201 and resp.get_json()["balance"] == "3.0000"
    with psycopg.connect(db_url) as c:
        actor = c.execute("SELECT actor FROM ledger WHERE kind = 'recharge'").fetchone()
    assert actor == ("user:olga",)
    # an operator is still not an admin
    resp = client.post("/v1/accounts/100001/suspend", base_url=HTTPS, headers=csrf)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "forbidden"
    # logout ends the session server-side: the old cookie value no longer works
    assert client.delete("/v1/session", base_url=HTTPS).status_code == 403  # no CSRF
    resp = client.delete("/v1/session", base_url=HTTPS, headers=csrf)
    assert resp.status_code == 204
    client.set_cookie(SESSION_COOKIE, value, domain="localhost", secure=True)
    assert client.get("/v1/accounts/100001", base_url=HTTPS).status_code == 401
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT count(*) FROM user_sessions").fetchone() == (0,)


def test_user_password_is_not_an_api_credential(site, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    make_user(db_url, "ada", "admin")
    client = site.test_client()
    assert client.get("/v1/accounts/100001", auth=("ada", PASSWORD)).status_code == 401


def test_disabled_user_and_expired_session(site, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    make_user(db_url, "vic", "viewer")
    client = site.test_client()
    assert login(client, "vic").status_code == 200
    assert client.get("/v1/accounts/100001", base_url=HTTPS).status_code == 200
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE user_sessions SET last_seen_at = now() - interval '2 hours'")
        c.commit()
    assert client.get("/v1/accounts/100001", base_url=HTTPS).status_code == 401  # idle
    assert login(client, "vic").status_code == 200
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE users SET disabled_at = now()")
        c.commit()
    assert client.get("/v1/accounts/100001", base_url=HTTPS).status_code == 401
    assert login(client, "vic").status_code == 401


def test_failed_logins_are_limited(site, db_url) -> None:  # type: ignore[no-untyped-def]
    make_user(db_url, "ada", "admin")
    client = site.test_client()
    for _ in range(3):
        resp = login(client, "ada", "wrong password!")
        assert resp.status_code == 401 and "Set-Cookie" not in resp.headers
    # the 4th try is refused even with the right password
    resp = login(client, "ada")
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 900
    assert resp.get_json()["error"]["code"] == "too_many_attempts"
    # usernames are counted apart, addresses across usernames (5 per address here)
    make_user(db_url, "bob", "viewer")
    assert login(client, "bob").status_code == 200
    for _ in range(2):
        assert login(client, "nobody", "x").status_code == 401
    assert login(client, "bob").status_code == 429  # this address used its 5 failures
    assert login(client, "bob", **{"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    # when the window is over, the user may try again
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE login_failures SET window_start = now() - interval '16 minutes'")
        c.commit()
    assert login(client, "ada").status_code == 200
    with psycopg.connect(db_url) as c:
        keys = [r[0] for r in c.execute("SELECT key FROM login_failures ORDER BY key")]
    assert "user:ada" not in keys  # a success clears the username's count


def test_unknown_user_and_bad_bodies(site) -> None:  # type: ignore[no-untyped-def]
    client = site.test_client()
    assert login(client, "ghost").status_code == 401
    for body in ({"username": 1, "password": "x"}, {"username": "a" * 65, "password": "x"}):
        resp = client.post("/v1/session", json=body, base_url=HTTPS)
        assert resp.status_code == 401
        assert set(resp.get_json()["error"]) == {"code", "message", "details"}
