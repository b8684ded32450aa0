"""Secrets never logged, never stored in clear (tokens, passwords, FAC codes).

A real sidecar at DEBUG level gets requests carrying every kind of secret, right and wrong;
then its whole log output, every row of every table and every Redis value are searched.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
import requests
from conftest import (
    FS_AUTH,
    FS_PASSWORD,
    FS_USER,
    ROOT,
    Seed,
    SidecarProcess,
    call_body,
    start_sidecar,
)
from psycopg import sql
from unit.cucm.cucm_rows import SIETE_CDR_NAME, fac_chain, siete

from reliability.conftest import PrivateServers
from reliability.tally import TALLY

FAC_KEY = "reliability-fac-key-" + "k" * 16


@pytest.fixture
def sidecar(servers: PrivateServers, rel_seed: Seed) -> Iterator[SidecarProcess]:
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1,
        APOLO_LOG_LEVEL="DEBUG", APOLO_FAC_KEY=FAC_KEY, APOLO_SESSION_COOKIE_SECURE="false",
    )  # fmt: skip
    yield process
    process.stop()


def _log_of(sidecar: SidecarProcess) -> Path:
    return ROOT / ".data" / f"sidecar-{sidecar.url.rsplit(':', 1)[1]}.log"


def _everything_stored(db_url: str, redis_url: str) -> str:
    with psycopg.connect(db_url) as c:
        tables = [r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()]  # fmt: skip
        rows = [
            str(row[0])
            for t in tables
            for row in c.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(t)))
        ]
    client = redis_lib.Redis.from_url(redis_url)
    values = [repr(client.dump(k)) + repr(k) for k in client.scan_iter()]
    return "\n".join(rows + values)


def test_no_secret_in_logs_or_in_the_record(
    sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed
) -> None:
    TALLY.scenarios.append("secrets")
    url = sidecar.url
    rel_seed.account("600001", balance="5.00", rates=[("51", "0.60")])
    admin = rel_seed.token("admin")
    wrong_token = "apo_" + secrets.token_urlsafe(32)
    password = "Corr3ct-horse-" + secrets.token_hex(6)
    wrong_password = "Wr0ng-horse-" + secrets.token_hex(6)
    wrong_fs = "wrong-fs-" + secrets.token_hex(6)
    fac_code = str(secrets.randbelow(10**9) + 10**9)  # 10 digits
    env = {**os.environ, "DATABASE_URL": servers.db_url}
    subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "users", "create", "rel-admin", "--role", "admin",
         "--password-stdin"],
        input=password + "\n", text=True, env=env, cwd=ROOT, check=True, capture_output=True,
        timeout=60,
    )  # fmt: skip

    bearer = {"Authorization": f"Bearer {admin}"}
    answers = [
        requests.get(f"{url}/v1/accounts/600001", headers=bearer, timeout=10),
        requests.get(
            f"{url}/v1/accounts/600001",
            headers={"Authorization": f"Bearer {wrong_token}"},
            timeout=10,
        ),
        requests.post(
            f"{url}/v1/authorize",
            auth=FS_AUTH,
            timeout=10,
            json=call_body(str(uuidlib.uuid4()), "600001", "519"),
        ),
        requests.post(
            f"{url}/v1/authorize",
            auth=(FS_USER, wrong_fs),
            timeout=10,
            json=call_body(str(uuidlib.uuid4()), "600001", "519"),
        ),
        requests.post(
            f"{url}/v1/session", json={"username": "rel-admin", "password": password}, timeout=10
        ),
        requests.post(
            f"{url}/v1/session",
            json={"username": "rel-admin", "password": wrong_password},
            timeout=10,
        ),
        requests.post(
            f"{url}/v1/fac",
            headers=bearer,
            timeout=10,
            json={"code": fac_code, "name": "boss", "level": 1, "account": "600001"},
        ),
        # the same code again, and a malformed request around it: the errors must not echo it
        requests.post(
            f"{url}/v1/fac",
            headers=bearer,
            timeout=10,
            json={"code": fac_code, "name": "boss", "level": 1, "account": "600001"},
        ),
        requests.post(
            f"{url}/v1/fac",
            headers=bearer,
            timeout=10,
            json={"code": fac_code, "name": "x", "level": "high", "account": "nope"},
        ),
    ]
    # CUCM files carry the code in clear: a good one, then one refused for a bad field
    table = siete()
    setup, talk = fac_chain(table, fac_code, "Project", "S0/SU0/DS1-0@gw-lima", "0051987", 95)
    switch = {"Authorization": f"Bearer {rel_seed.token('switch')}"}
    for rows, name in (
        ([talk, setup], SIETE_CDR_NAME),
        ([table.fresh(setup, duration="x")], SIETE_CDR_NAME.replace("_02_", "_03_")),
    ):
        answers.append(requests.post(f"{url}/cucm/cdr", data=table.to_bytes(rows), timeout=10,
                                     headers={**switch, "X-Apolo-File-Name": name}))  # fmt: skip
    # tokens a client put in the URL, which the sidecar never reads: kept out of the log
    in_url = [
        requests.get(f"{url}/v1/accounts/600001?api_token={admin}", headers=bearer, timeout=10),
        requests.get(f"{url}/v1/cdrs", params={"token": wrong_token, "x": "1"}, timeout=10),
        requests.get(f"{url}/v1/accounts/{admin}", headers=bearer, timeout=10),
    ]
    assert [a.status_code for a in in_url] == [200, 401, 404]
    codes = [a.status_code for a in answers]
    assert codes[9] == 200 and 400 <= codes[10] < 500, [a.text[:200] for a in answers[9:]]
    assert "line" in answers[10].json()["error"]["message"]  # refused for its bad field
    assert codes[:3] == [200, 401, 200] and codes[3] == 401
    assert (codes[4], codes[5], codes[6]) == (200, 401, 201)
    assert 400 <= codes[7] < 500 and 400 <= codes[8] < 500
    session_cookie = answers[4].cookies.get_dict()
    assert session_cookie, "login set no session cookie"
    for answer in answers:
        assert fac_code not in answer.text and password not in answer.text

    sidecar.stop()  # flush everything it had to say
    log = _log_of(sidecar).read_text("utf-8", "replace")
    assert "POST /v1/fac" in log  # the log really is this run's, at DEBUG level
    assert "GET /v1/accounts/600001?api_token=[redacted] " in log  # the access log's line
    basic = base64.b64encode(f"{FS_USER}:{FS_PASSWORD}".encode()).decode()
    wrong_basic = base64.b64encode(f"{FS_USER}:{wrong_fs}".encode()).decode()
    stored = _everything_stored(servers.db_url, servers.redis_url)
    leaks = {
        name: [where for where, text in (("log", log), ("stored", stored)) if str(value) in text]
        for name, value in {
            "admin token": admin,
            "wrong token": wrong_token,
            "password": password,
            "wrong password": wrong_password,
            "fs password": FS_PASSWORD,
            "wrong fs": wrong_fs,
            "fs basic header": basic,
            "wrong fs basic header": wrong_basic,
            "fac code": fac_code,
            "fac key": FAC_KEY,
            **{f"cookie {k}": v for k, v in session_cookie.items()},
        }.items()
    }
    assert {k: v for k, v in leaks.items() if v} == {}
