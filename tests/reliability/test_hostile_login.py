"""The doors a stranger can knock on without credentials, through a real gunicorn: the
failed-login limit under a burst, the database pool under a burst, login CSRF, the login
``next=`` redirect, framing of the dashboard, and which credentials ``/freeswitch/*`` take.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid as uuidlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests
from conftest import FS_AUTH, Seed, SidecarProcess, start_sidecar
from fixtures_path import FS_FIXTURES, read_http_capture

from reliability.conftest import PrivateServers
from reliability.hostile import only_user, refused, send, snapshot
from reliability.tally import TALLY

PASSWORD = "hostile-login-password"
LIMIT = 5  # APOLO_LOGIN_MAX_FAILURES (the default)
THREADS = 8  # start_sidecar's gunicorn threads


@pytest.fixture(scope="module")
def sidecar(servers: PrivateServers) -> Iterator[SidecarProcess]:
    # a small pool (one connection per thread, as `apolo serve` sizes it) and a short wait:
    # a request that needed a second connection would find none and answer 503 at once
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1, APOLO_SESSION_COOKIE_SECURE="false",
        APOLO_DB_POOL_SIZE=str(THREADS), APOLO_DB_TIMEOUT="0.5",
        APOLO_LOGIN_MAX_FAILURES_PER_ADDRESS="1000",
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def ctx(sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed) -> dict[str, Any]:
    rel_seed.account("500001", balance="10.00")
    only_user(servers.db_url, "olga", "admin", PASSWORD)
    return {"url": sidecar.url, "db": servers.db_url,
            "admin": {"Authorization": f"Bearer {rel_seed.token('admin')}"},
            "switch": {"Authorization": f"Bearer {rel_seed.token('switch')}"}}  # fmt: skip


def _login(url: str, username: str, password: str, **headers: str) -> requests.Response:
    return requests.post(f"{url}/v1/session", json={"username": username, "password": password},
                         headers=headers, timeout=90)  # fmt: skip


def _burst(n: int, fn: Any) -> list[Any]:
    start = threading.Barrier(n)

    def one(i: int) -> Any:
        start.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_40_simultaneous_wrong_passwords_get_at_most_the_limit_of_checks(
    ctx: dict[str, Any],
) -> None:
    """A 401 is a password check that failed; a 429 was refused before any check."""
    answers = _burst(40, lambda i: _login(ctx["url"], "olga", f"wrong password {i}"))
    codes = sorted(a.status_code for a in answers)
    checked = codes.count(401)
    for code in codes:
        TALLY.hostile(code, changed=False)
    assert set(codes) <= {401, 429}, codes
    assert 1 <= checked <= LIMIT, codes
    # the right password is refused too now, until the window ends
    assert _login(ctx["url"], "olga", PASSWORD).status_code == 429
    with psycopg.connect(ctx["db"]) as c:
        failures = c.execute("SELECT failures FROM login_failures WHERE key = 'user:olga'")
        assert failures.fetchone() == (LIMIT,)


def test_a_login_burst_never_exhausts_the_pool(ctx: dict[str, Any]) -> None:
    """Strangers trying twice as many usernames at once as there are threads (each holds
    one for a password check of up to a second), while an operator works: no 503 for
    anyone. (A login that needed a second connection made them all wait for one.)"""
    stop = threading.Event()
    served: list[int] = []

    def operator() -> None:
        while not stop.is_set():
            served.append(requests.get(f"{ctx['url']}/v1/accounts/500001", headers=ctx["admin"],
                                       timeout=90).status_code)  # fmt: skip

    worker = threading.Thread(target=operator)
    worker.start()
    try:
        answers = _burst(2 * THREADS, lambda i: _login(ctx["url"], f"user{i}", "wrong password"))
    finally:
        stop.set()
        worker.join()
    codes = [a.status_code for a in answers]
    for code in codes:
        TALLY.hostile(code, changed=False)
    assert set(codes) == {401}, codes
    assert served and set(served) == {200}, served


def test_login_csrf_is_refused(ctx: dict[str, Any]) -> None:
    creds = b'{"username": "olga", "password": "' + PASSWORD.encode() + b'"}'
    cases = [
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 415),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Origin": f"{ctx['url']}.evil.example"}, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403),
    ]
    for headers, status in cases:
        before = snapshot(ctx["db"])
        answer = send(ctx["url"], "POST", "/v1/session", creds, headers)
        refused(answer.status, before, ctx["db"], (headers, answer.body[:200]))
        assert answer.status == status, (headers, answer.status, answer.body[:200])
        assert "set-cookie" not in answer.headers
    # same origin, or none (a script), logs in
    same = send(
        ctx["url"],
        "POST",
        "/v1/session",
        creds,
        {"Content-Type": "application/json; charset=utf-8", "Origin": ctx["url"]},
    )
    assert same.status == 200 and "apolo_session=" in same.headers["set-cookie"]  # fmt: skip
    assert _login(ctx["url"], "olga", PASSWORD).status_code == 200


NEXTS = ["/dashboard/\r\nSet-Cookie: x=1", "/dashboard/accounts\n", "/dashboard/\x00",
         "/dashboard/a b", "/dashboard/\x7f", "/dashboard/%0d%0aX: 1", "//evil.example/",
         "/dashboard/\u2028"]  # fmt: skip


@pytest.mark.parametrize("target", NEXTS, ids=range(len(NEXTS)))
def test_crlf_in_the_login_next_falls_back_to_the_dashboard(
    ctx: dict[str, Any], target: str
) -> None:
    session = requests.Session()
    form = session.get(f"{ctx['url']}/dashboard/login", params={"next": target}, timeout=10)
    TALLY.hostile(form.status_code, changed=False, safe=True)
    if "\x00" in target:
        assert form.status_code == 400
    else:
        assert form.status_code == 200, form.text[:300]
        assert re.search(r'name="next" value="/dashboard/"', form.text), form.text
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    csrf = token.group(1) if token else session.cookies.get("apolo_login_csrf", "")
    session.cookies.set("apolo_login_csrf", csrf or "t")
    answer = session.post(
        f"{ctx['url']}/dashboard/login", allow_redirects=False, timeout=10,
        data={"login_csrf": csrf or "t", "username": "olga", "password": PASSWORD,
              "next": target},
    )  # fmt: skip
    TALLY.hostile(answer.status_code, changed=False, safe=True)
    if "\x00" in target:
        assert answer.status_code == 400
        return
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"] in ("/dashboard/", f"{ctx['url']}/dashboard/")


def test_dashboard_and_api_answers_cannot_be_framed(ctx: dict[str, Any]) -> None:
    for path in ("/dashboard/login", "/dashboard/", "/healthz", "/v1/accounts/500001"):
        answer = requests.get(f"{ctx['url']}{path}", headers=ctx["admin"], timeout=10,
                              allow_redirects=False)  # fmt: skip
        assert answer.headers["X-Frame-Options"] == "DENY", path
        csp = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def _basic() -> str:
    return "Basic " + base64.b64encode(f"{FS_AUTH[0]}:{FS_AUTH[1]}".encode()).decode()


def test_freeswitch_routes_take_only_freeswitch_credentials(ctx: dict[str, Any]) -> None:
    """A switch-role token (as `apolo cucm watch` holds) is for /cucm/cdr and /v1/authorize;
    /freeswitch/* takes only APOLO_FS_USER / APOLO_FS_PASSWORD."""
    dialplan = read_http_capture(FS_FIXTURES / "xml_curl" / "dialplan_request_loopback.http")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for token in (ctx["switch"], ctx["admin"]):
        before = snapshot(ctx["db"])
        answer = send(ctx["url"], "POST", "/freeswitch/dialplan", dialplan.body, {**token, **form})
        refused(answer.status, before, ctx["db"], answer.body[:200])
        assert answer.status == 401 and "basic" in answer.headers["www-authenticate"].lower()
        answer = send(ctx["url"], "POST", f"/freeswitch/cdr?uuid={uuidlib.uuid4()}", b"<cdr/>",
                      {**token, "Content-Type": "text/xml"})  # fmt: skip
        refused(answer.status, before, ctx["db"], answer.body[:200])
        assert answer.status == 401
    fs = send(ctx["url"], "POST", "/freeswitch/dialplan", dialplan.body,
              {"Authorization": _basic(), **form})  # fmt: skip
    assert fs.status == 200 and b"<document" in fs.body
    authorize = requests.post(
        f"{ctx['url']}/v1/authorize", headers=ctx["switch"], timeout=10,
        json={"uuid": str(uuidlib.uuid4()), "caller": "500001", "callee": "519"},
    )  # fmt: skip
    assert authorize.status_code == 200
