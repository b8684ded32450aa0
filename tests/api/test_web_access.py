"""Dashboard access: login form, session cookie, redirects, roles, CSRF, logout."""

from __future__ import annotations

import io

import psycopg
import pytest
from test_web_support import (
    PAGES,
    ROLES,
    csrf_of,
    dashboard_with_users,
    hidden,
    login,
    plain_http,
)

from sidecar.auth import SESSION_COOKIE


@pytest.fixture
def web(app, seed, db_url):  # type: ignore[no-untyped-def]
    dashboard_with_users(
        app, db_url, APOLO_LOGIN_MAX_FAILURES="3", APOLO_LOGIN_MAX_FAILURES_PER_ADDRESS="50"
    )
    seed.account("100001", balance="12.5")
    return app


def _count(db_url: str, sql: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_pages_redirect_to_login_without_a_session(web) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    for path in (*PAGES, "/dashboard/accounts/100001", "/dashboard/calls/stream"):
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert resp.headers["Location"].startswith("/dashboard/login?next=/dashboard/"), path
    # a forged or ended session is no session
    client.set_cookie(SESSION_COOKIE, "forged-value")
    assert client.get("/dashboard/").status_code == 302


def test_posts_without_a_session_change_nothing(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    resp = client.post("/dashboard/accounts/100001/recharge", data={"amount": "5"})
    assert resp.status_code == 303 and "/dashboard/login" in resp.headers["Location"]
    resp = client.post("/dashboard/rates/import", data={"plan": "x"})
    assert resp.status_code == 303
    assert seed.balance("100001")["balance"] == "12.5000"
    assert _count(db_url, "SELECT count(*) FROM rate_plans WHERE name = 'x'") == 0


def test_login_sets_a_safe_cookie_and_lands_on_next(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    resp = login(client, "viewer-user", next_="/dashboard/accounts")
    assert resp.status_code == 303 and resp.headers["Location"] == "/dashboard/accounts"
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert client.get("/dashboard/accounts").status_code == 200
    assert _count(db_url, "SELECT count(*) FROM audit_log WHERE action = 'user.login'") == 1


def test_secure_cookie_when_configured(web) -> None:  # type: ignore[no-untyped-def]
    plain_http(web, APOLO_SESSION_COOKIE_SECURE="true")
    resp = login(web.test_client(), "admin-user")
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith(SESSION_COOKIE))
    assert "Secure" in cookie


def test_login_never_redirects_off_site(web) -> None:  # type: ignore[no-untyped-def]
    for target in ("//evil.example/x", "https://evil.example/", "/dashboard//evil.example"):
        resp = login(web.test_client(), "admin-user", next_=target)
        assert resp.status_code == 303 and resp.headers["Location"] == "/dashboard/", target


def test_wrong_password_and_rate_limit(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    for _ in range(3):
        resp = login(client, "admin-user", "wrong password here")
        assert resp.status_code == 401
        assert "Wrong username or password" in resp.get_data(as_text=True)
        assert not any(c.startswith(SESSION_COOKIE) for c in resp.headers.getlist("Set-Cookie"))
    # the right password is refused too while the limit holds
    resp = login(client, "admin-user")
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "Too many failed logins" in resp.get_data(as_text=True)
    assert _count(db_url, "SELECT count(*) FROM user_sessions") == 0
    # an unknown user is answered like a wrong password
    assert login(client, "nobody-here").status_code == 401


def test_login_form_needs_its_csrf_token(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    html = client.get("/dashboard/login").get_data(as_text=True)
    data = {"username": "admin-user", "password": "correct horse battery staple"}
    assert client.post("/dashboard/login", data=data).status_code == 403
    data["login_csrf"] = "not-the-cookie-value"
    assert client.post("/dashboard/login", data=data).status_code == 403
    # a cross-site form post has no cookie at all
    fresh = web.test_client()
    data["login_csrf"] = hidden(html, "login_csrf")
    assert fresh.post("/dashboard/login", data=data).status_code == 403
    assert _count(db_url, "SELECT count(*) FROM user_sessions") == 0


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_for_every_role(web, role) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    assert login(client, f"{role}-user").status_code == 303
    for path in (*PAGES, "/dashboard/accounts/100001"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        html = resp.get_data(as_text=True)
        assert f"user:{role}-user · {role}" in html and 'id="logout"' in html
    detail = client.get("/dashboard/accounts/100001").get_data(as_text=True)
    assert "12.50" in detail
    assert ('id="recharge-form"' in detail) == (role in ("admin", "operator"))
    rates = client.get("/dashboard/rates").get_data(as_text=True)
    assert ('id="rate-import"' in rates) == (role == "admin")


def test_viewer_and_operator_posts_are_refused(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    login(client, "viewer-user")
    token = csrf_of(client)
    form = {"csrf_token": token, "amount": "5", "idempotency_key": "k-viewer"}
    resp = client.post("/dashboard/accounts/100001/recharge", data=form)
    assert resp.status_code == 403 and "may not do this" in resp.get_data(as_text=True)
    assert seed.balance("100001")["balance"] == "12.5000"
    operator = web.test_client()
    login(operator, "operator-user")
    data = {
        "csrf_token": csrf_of(operator),
        "plan": "op-plan",
        "file": (io.BytesIO(b"prefix,rate_per_minute\n51,1\n"), "r.csv"),
    }
    resp = operator.post("/dashboard/rates/import", data=data, content_type="multipart/form-data")
    assert resp.status_code == 403
    assert _count(db_url, "SELECT count(*) FROM rate_plans WHERE name = 'op-plan'") == 0


def test_csrf_is_required_on_every_post(web, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    login(client, "admin-user")
    for data in ({}, {"csrf_token": "wrong"}):
        resp = client.post(
            "/dashboard/accounts/100001/recharge",
            data={**data, "amount": "5", "idempotency_key": "k1"},
        )
        assert resp.status_code == 403 and "csrf" in resp.get_data(as_text=True).lower()
        assert client.post("/dashboard/logout", data=data).status_code == 403
    assert seed.balance("100001")["balance"] == "12.5000"
    assert _count(db_url, "SELECT count(*) FROM ledger WHERE kind = 'recharge'") == 0


def test_logout_ends_the_session(web, db_url) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    login(client, "operator-user")
    resp = client.post("/dashboard/logout", data={"csrf_token": csrf_of(client)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/dashboard/login"
    assert _count(db_url, "SELECT count(*) FROM user_sessions") == 0
    assert client.get("/dashboard/accounts").status_code == 302


def test_static_files_are_served_without_a_session(web) -> None:  # type: ignore[no-untyped-def]
    client = web.test_client()
    assert "EventSource" in client.get("/dashboard/static/dashboard.js").get_data(as_text=True)
    assert client.get("/dashboard/static/app.css").status_code == 200
