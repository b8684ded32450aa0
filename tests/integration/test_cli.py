"""The operator CLI against the real test database (and a real sidecar for tokens)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
import requests
from conftest import ROOT
from psycopg.rows import dict_row

from sidecar.repo import accounts as accounts_repo

pytestmark = pytest.mark.integration


def apolo(db_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "USER": "ops-tester"}
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_db_upgrade_is_idempotent(db_url) -> None:  # type: ignore[no-untyped-def]
    assert apolo(db_url, "db", "upgrade").stdout.strip() == "schema is up to date"
    with psycopg.connect(db_url) as c:
        versions = [r[0] for r in c.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions[0] == 1 and versions == sorted(set(versions))


def test_token_created_on_cli_works_on_the_api(db_url, seed, live_sidecar) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    out = apolo(db_url, "tokens", "create", "noc", "--role", "viewer").stdout
    token = out.strip().splitlines()[-1]
    assert token.startswith("apo_")
    with psycopg.connect(db_url) as c:
        stored = c.execute("SELECT token_hash, role FROM api_tokens WHERE name = 'noc'").fetchone()
    assert stored[1] == "viewer" and token not in stored[0]
    resp = requests.get(
        f"{live_sidecar.url}/v1/accounts/100001",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert resp.status_code == 200 and resp.json()["number"] == "100001"


def test_accounts_create_and_recharge(db_url, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    apolo(
        db_url,
        "accounts",
        "create",
        "800001",
        "--plan",
        plan,
        "--type",
        "prepaid",
        "--balance",
        "10.00",
        "--ani",
        "800001",
        "--ani",
        "5558001",
        "--max-calls",
        "2",
    )
    apolo(db_url, "accounts", "recharge", "800001", "5.5")
    shown = apolo(db_url, "accounts", "show", "800001").stdout
    assert '"balance": "15.5000"' in shown and '"5558001"' in shown
    bad = apolo(
        db_url,
        "accounts",
        "create",
        "800002",
        "--plan",
        plan,
        "--type",
        "prepaid",
        "--balance",
        "1.00001",
        check=False,
    )
    assert bad.returncode != 0 and "4 decimals" in bad.stderr
    with psycopg.connect(db_url) as c:
        rows = c.execute("SELECT kind, amount, actor FROM ledger ORDER BY id").fetchall()
        audit = c.execute("SELECT actor, action FROM audit_log ORDER BY id").fetchall()
    assert [(k, str(a)) for k, a, _ in rows] == [("initial", "10.0000"), ("recharge", "5.5000")]
    assert ("cli:ops-tester", "account.recharge") in audit


def test_demo_load_twice(db_url, seed) -> None:  # type: ignore[no-untyped-def]
    first = apolo(db_url, "demo", "load").stdout
    assert "100001" in first and "trunk demo-pbx" in first
    assert "created: nothing" in apolo(db_url, "demo", "load").stdout
    trunks = apolo(db_url, "trunks", "list").stdout.splitlines()
    assert trunks == ["demo-pbx\t192.0.2.0/24\t-\ttrust_caller_id"]


def test_reservations_expire_releases_overdue_money(db_url, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="10.00")
    with psycopg.connect(db_url) as c:
        account_id = c.execute("SELECT id FROM accounts WHERE number = '100001'").fetchone()[0]
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        for uuid, seconds, grace in (("live-call", 3600, 0), ("lost-cdr", 0, -1)):
            got = accounts_repo.reserve(
                c, account_id=account_id, call_uuid=uuid, want=Decimal("2.00"),
                minimum=Decimal("0.60"), seconds=seconds, grace=timedelta(seconds=grace),
                rate_id=0,
                caller="100001", callee="51987654321",
            )  # fmt: skip
            assert got["reason"] == "authorized"
        c.commit()
    assert seed.balance("100001")["reserved"] == "4.0000"
    out = apolo(db_url, "reservations", "expire").stdout
    assert "expired 1 reservation(s), released 2.0000" in out
    assert seed.balance("100001")["reserved"] == "2.0000"
    with psycopg.connect(db_url) as c:
        statuses = dict(c.execute("SELECT call_uuid, status FROM reservations").fetchall())
    assert statuses == {"lost-cdr": "expired", "live-call": "open"}


def test_trunks_create_list_delete(db_url, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("700001")
    out = apolo(db_url, "trunks", "create", "carrier", "--cidr", "203.0.113.0/28",
                "--cidr", "2001:db8::/32", "--account", "700001").stdout  # fmt: skip
    assert '"name": "carrier"' in out and '"account": "700001"' in out
    apolo(db_url, "trunks", "create", "pbx", "--cidr", "192.0.2.0/24", "--trust-caller-id",
          "--trust-billing-header")  # fmt: skip
    assert apolo(db_url, "trunks", "list").stdout.splitlines() == [
        "carrier\t203.0.113.0/28,2001:db8::/32\t700001\t-",
        "pbx\t192.0.2.0/24\t-\ttrust_caller_id,trust_billing_header",
        "test-pbx\t198.51.100.0/24\t-\ttrust_caller_id",
    ]
    refused = {
        "overlaps": ("x", "--cidr", "203.0.113.8/29", "--account", "700001"),
        "no account 999": ("x", "--cidr", "203.0.113.64/26", "--account", "999"),
        "must bill someone": ("x", "--cidr", "203.0.113.64/26"),
        "host bits set": ("x", "--cidr", "203.0.113.65/26", "--trust-caller-id"),
    }
    for says, args in refused.items():
        result = apolo(db_url, "trunks", "create", *args, check=False)
        assert result.returncode != 0 and says in result.stderr, (says, result.stderr)
    assert "deleted trunk pbx (192.0.2.0/24)" in apolo(db_url, "trunks", "delete", "pbx").stdout
    assert "no trunk pbx" in apolo(db_url, "trunks", "delete", "pbx", check=False).stderr
    with psycopg.connect(db_url) as c:
        audit = c.execute(
            "SELECT actor, action, target FROM audit_log WHERE action LIKE 'trunk.%%' ORDER BY id"
        ).fetchall()
    assert audit[-3:] == [("cli:ops-tester", "trunk.create", "trunk:carrier"),
                          ("cli:ops-tester", "trunk.create", "trunk:pbx"),
                          ("cli:ops-tester", "trunk.delete", "trunk:pbx")]  # fmt: skip


def test_accounts_update_sip_users(db_url, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("700001")
    seed.account("700002")
    out = apolo(db_url, "accounts", "update", "700001", "--sip-user", "1001@PBX.example").stdout
    assert '"sip_users": [\n    "1001@pbx.example"\n  ]' in out
    taken = apolo(db_url, "accounts", "update", "700002", "--sip-user", "1001@pbx.example",
                  check=False)  # fmt: skip
    assert taken.returncode != 0 and "1001@pbx.example already belongs" in taken.stderr
    bad = apolo(db_url, "accounts", "update", "700002", "--sip-user", "1001", check=False)
    assert bad.returncode != 0 and "is not a SIP user" in bad.stderr
    assert '"sip_users": []' in apolo(db_url, "accounts", "update", "700001",
                                      "--no-sip-users").stdout  # fmt: skip
    assert apolo(db_url, "accounts", "update", "700001", check=False).returncode != 0
