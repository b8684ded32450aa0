"""JSON bodies built to hurt, on every JSON route of a real gunicorn sidecar: nested 10,000
levels deep, with a key given twice, and recharges that would overflow NUMERIC(18,4).

Each body is otherwise valid for its route (``test_the_bodies_are_valid`` proves it), so a
4xx here is the check under test refusing it, not some other check.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests
from conftest import FS_AUTH, Seed, SidecarProcess, start_sidecar
from psycopg.rows import dict_row

from reliability.conftest import PrivateServers
from reliability.hostile import HOSTILE_ENV, only_user, refused, send, snapshot

NUMBER = "500001"
PASSWORD = "hostile-json-password"
MAX_BALANCE = "99999999999999.9999"


@pytest.fixture(scope="module")
def sidecar(servers: PrivateServers) -> Iterator[SidecarProcess]:
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1,
        **HOSTILE_ENV,
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def ctx(sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed) -> dict[str, Any]:
    rel_seed.account(NUMBER, balance="10.00", rates=[("51", "0.60")])
    admin = {"Authorization": f"Bearer {rel_seed.token('admin')}"}
    only_user(servers.db_url, "olga", "operator", PASSWORD, "fac_codes")
    with psycopg.connect(servers.db_url, row_factory=dict_row) as c:
        plan = c.execute("SELECT name FROM rate_plans ORDER BY id LIMIT 1").fetchone()["name"]
        rate_id = c.execute("SELECT id FROM rates ORDER BY id LIMIT 1").fetchone()["id"]
    fac = requests.post(
        f"{sidecar.url}/v1/fac",
        headers=admin,
        timeout=10,
        json={"code": "87654321", "name": "boss", "level": 1, "account": NUMBER},
    )
    assert fac.status_code == 201, fac.text  # fmt: skip
    return {"url": sidecar.url, "db": servers.db_url, "admin": admin, "plan": plan,
            "rate_id": rate_id, "fac_id": fac.json()["id"]}  # fmt: skip


def _fs_basic() -> str:
    import base64

    return "Basic " + base64.b64encode(f"{FS_AUTH[0]}:{FS_AUTH[1]}".encode()).decode()


def json_routes(ctx: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, str], dict[str, Any]]]:
    """name -> (method, path, headers, a body the route accepts)."""
    admin, plan = ctx["admin"], ctx["plan"]
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    return {
        "create_account": ("POST", "/v1/accounts", admin,
                           {"number": "700001", "plan": plan, "type": "prepaid"}),
        "update_account": ("PATCH", f"/v1/accounts/{NUMBER}", admin, {"name": "renamed"}),
        "recharge": ("POST", f"/v1/accounts/{NUMBER}/recharges", admin, {"amount": "1.00"}),
        "authorize": ("POST", "/v1/authorize", {"Authorization": _fs_basic()},
                      {"uuid": str(uuidlib.uuid4()), "caller": NUMBER, "callee": "51987654321"}),
        "create_fac": ("POST", "/v1/fac", admin,
                       {"code": "12345678", "name": "clerk", "level": 1, "account": NUMBER}),
        "update_fac": ("PATCH", f"/v1/fac/{ctx['fac_id']}", admin, {"name": "chief"}),
        "create_plan": ("POST", "/v1/rate-plans", admin, {"name": "hostile-plan"}),
        "create_rate": ("POST", f"/v1/rate-plans/{plan}/rates", admin,
                        {"prefix": "52", "rate_per_minute": "0.50"}),
        "update_rate": ("PATCH", f"/v1/rates/{ctx['rate_id']}", admin,
                        {"rate_per_minute": "0.70"}),
        "import_legacy": ("POST", f"/v1/rate-plans/{plan}/import-legacy", admin,
                          {"zones": [], "prefixes": [], "rate_zones": []}),
        "rerating_preview": ("POST", "/v1/rerating/preview", admin, window),
        "rerating_apply": ("POST", "/v1/rerating/apply", admin, window),
        "login": ("POST", "/v1/session", {}, {"username": "olga", "password": PASSWORD}),
    }  # fmt: skip


ROUTES = ("create_account", "update_account", "recharge", "authorize", "create_fac",
          "update_fac", "create_plan", "create_rate", "update_rate", "import_legacy",
          "rerating_preview", "rerating_apply", "login")  # fmt: skip


def _post(ctx: dict[str, Any], route: str, raw: bytes) -> tuple[int, Any]:
    method, path, headers, _ = json_routes(ctx)[route]
    answer = send(ctx["url"], method, path, raw, {**headers, "Content-Type": "application/json"})
    return answer.status, answer


@pytest.mark.parametrize("route", ROUTES)
def test_the_bodies_are_valid(ctx: dict[str, Any], route: str) -> None:
    """The control: without the hostile twist, each body is accepted."""
    status, answer = _post(ctx, route, json.dumps(json_routes(ctx)[route][3]).encode())
    assert 200 <= status < 300, (route, status, answer.body[:300])


@pytest.mark.parametrize("route", ROUTES)
def test_json_nested_10000_levels_is_400(ctx: dict[str, Any], route: str) -> None:
    body = json_routes(ctx)[route][3]
    deep = b'{"deep": ' + b"[" * 10_000 + b"]" * 10_000 + b", " + json.dumps(body).encode()[1:]
    before = snapshot(ctx["db"])
    status, answer = _post(ctx, route, deep)
    refused(status, before, ctx["db"], (route, answer.body[:200]))
    assert status == 400 and answer.json()["error"]["code"] == "invalid_json", answer.body[:300]
    # nested less deep, but past what any route takes
    status, answer = _post(ctx, route, b'{"deep": ' + b"[" * 40 + b"]" * 40 + b"}")
    refused(status, before, ctx["db"], (route, answer.body[:200]))
    assert status == 400 and "nested" in answer.json()["error"]["message"], answer.body[:300]


@pytest.mark.parametrize("route", ROUTES)
def test_duplicate_json_keys_are_400(ctx: dict[str, Any], route: str) -> None:
    """The first key of the valid body is sent twice, the valid value last (where a parser
    that lets the last one win would take it)."""
    body = json_routes(ctx)[route][3]
    first = next(iter(body))
    raw = f'{{"{first}": "decoy", '.encode() + json.dumps(body).encode()[1:]
    before = snapshot(ctx["db"])
    status, answer = _post(ctx, route, raw)
    refused(status, before, ctx["db"], (route, answer.body[:200]))
    assert status == 400 and answer.json()["error"]["code"] == "invalid_json", answer.body[:300]
    assert first in answer.json()["error"]["message"]
    nested = json.dumps({**body, "x": {"a": 1}}).encode()[:-2] + b', "a": 2}}'
    status, answer = _post(ctx, route, nested)
    refused(status, before, ctx["db"], (route, answer.body[:200]))


def test_the_last_duplicate_never_wins(ctx: dict[str, Any]) -> None:
    """The probe's case: {"amount":"1.00","amount":"900.00"} recharged 900."""
    before = snapshot(ctx["db"])
    status, answer = _post(ctx, "recharge", b'{"amount":"1.00","amount":"900.00"}')
    refused(status, before, ctx["db"], answer.body[:200])


def _balance(db: str, number: str) -> str:
    with psycopg.connect(db) as c:
        return str(c.execute("SELECT balance FROM accounts WHERE number = %s", (number,))
                   .fetchone()[0])  # fmt: skip


def test_a_recharge_past_the_largest_balance_is_400_stating_it(ctx: dict[str, Any]) -> None:
    before = snapshot(ctx["db"])
    status, answer = _post(ctx, "recharge", b'{"amount": "99999999999999"}')
    refused(status, before, ctx["db"], answer.body[:200])
    error = answer.json()["error"]
    assert status == 400 and MAX_BALANCE in error["message"], error
    # exactly up to the largest balance is fine
    status, answer = _post(ctx, "recharge", b'{"amount": "99999999999989.9999"}')
    assert status == 201, answer.body[:300]
    assert _balance(ctx["db"], NUMBER) == MAX_BALANCE
    before = snapshot(ctx["db"])
    status, answer = _post(ctx, "recharge", b'{"amount": "0.0001"}')
    refused(status, before, ctx["db"], answer.body[:200])


def test_a_bulk_recharge_past_the_largest_balance_is_400_stating_it(
    ctx: dict[str, Any], rel_seed: Seed
) -> None:
    rel_seed.account("500002", balance="10.00")
    with psycopg.connect(ctx["db"]) as c:
        c.execute("UPDATE accounts SET balance = 99999999999995 WHERE number = %s", (NUMBER,))
    before = snapshot(ctx["db"])
    for dry_run in ("false", "true"):
        answer = requests.post(
            f"{ctx['url']}/v1/accounts/bulk-recharges", params={"dry_run": dry_run},
            data="account,amount\n500002,1.00\n500001,10.00\n",
            headers={**ctx["admin"], "Content-Type": "text/csv"}, timeout=10,
        )  # fmt: skip
        refused(answer.status_code, before, ctx["db"], answer.text[:200])
        assert answer.status_code == 400 and MAX_BALANCE in answer.text, answer.text[:300]
        assert answer.json()["error"]["details"]["rows"][0]["line"] == 3
