"""``apolo users`` and ``apolo tokens`` against the real test database and a real sidecar."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
import requests
from click.testing import CliRunner
from conftest import ROOT

from sidecar.auth import verify_password
from sidecar.cli.users_cmd import users

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"


@pytest.fixture
def no_users(clean: None, db_url: str) -> None:
    # conftest's `clean` predates sql/004_access.sql and does not empty its tables
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("TRUNCATE users CASCADE")


def run(db_url: str, group: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The click group in a process of its own (registered in `apolo` by the lead)."""
    module = {"users": "sidecar.cli.users_cmd", "tokens": "sidecar.cli.tokens_cmd"}[group]
    code = f"import sys; from {module} import {group}; sys.argv[0] = 'apolo {group}'; {group}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        env={**os.environ, "DATABASE_URL": db_url, "USER": "ops-tester"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def stored_user(db_url: str, username: str) -> tuple[str, str] | None:
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT role, password_hash FROM users WHERE username = %s", (username,)
        ).fetchone()
    return None if row is None else (row[0], row[1])


def test_users_create_from_stdin(db_url, no_users) -> None:  # type: ignore[no-untyped-def]
    result = run(
        db_url,
        "users",
        "create",
        "alice",
        "--role",
        "operator",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    role, password_hash = stored_user(db_url, "alice") or ("", "")
    assert role == "operator" and password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash
    assert verify_password(password_hash, PASSWORD) and not verify_password(password_hash, "x")
    with psycopg.connect(db_url) as c:
        audit = c.execute(
            "SELECT actor, target, after->>'role' FROM audit_log WHERE action = 'user.create'"
        ).fetchall()
    assert audit == [("cli:ops-tester", "user:alice", "operator")]
    again = run(
        db_url,
        "users",
        "create",
        "alice",
        "--role",
        "viewer",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert again.returncode != 0 and "already exists" in again.stderr
    listed = [json.loads(line) for line in run(db_url, "users", "list").stdout.splitlines()]
    assert [(u["username"], u["role"], u["disabled_at"]) for u in listed] == [
        ("alice", "operator", None)
    ]


def test_users_create_refuses_weak_or_bad_input(db_url, no_users) -> None:  # type: ignore[no-untyped-def]
    short = run(
        db_url, "users", "create", "bob", "--role", "viewer", "--password-stdin", stdin="short\n"
    )
    assert short.returncode != 0 and "at least 12" in short.stderr
    bad_name = run(
        db_url,
        "users",
        "create",
        "bob smith",
        "--role",
        "viewer",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert bad_name.returncode != 0
    bad_role = run(
        db_url,
        "users",
        "create",
        "bob",
        "--role",
        "switch",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert bad_role.returncode != 0
    # there is no way to pass the password as an argument
    argv = run(db_url, "users", "create", "bob", "--role", "viewer", "--password", PASSWORD)
    assert argv.returncode != 0 and "No such option" in argv.stderr
    assert stored_user(db_url, "bob") is None


def test_users_prompt_disable_enable_and_passwd(db_url, no_users, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    mismatch = runner.invoke(
        users,
        ["create", "carol", "--role", "admin"],
        input=f"{PASSWORD}\nsomething else entirely\n",
    )
    assert mismatch.exit_code != 0 and stored_user(db_url, "carol") is None
    made = runner.invoke(
        users, ["create", "carol", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert made.exit_code == 0, made.output
    assert PASSWORD not in made.output
    assert runner.invoke(users, ["disable", "carol"]).exit_code == 0
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT disabled_at IS NOT NULL FROM users").fetchone() == (True,)
    assert runner.invoke(users, ["enable", "carol"]).exit_code == 0
    with psycopg.connect(db_url) as c:
        assert c.execute("SELECT disabled_at IS NULL FROM users").fetchone() == (True,)
    new_password = "another long passphrase"
    changed = runner.invoke(users, ["passwd", "carol", "--password-stdin"], input=new_password)
    assert changed.exit_code == 0, changed.output
    _, password_hash = stored_user(db_url, "carol") or ("", "")
    assert verify_password(password_hash, new_password)
    assert runner.invoke(users, ["disable", "nobody"]).exit_code != 0


def test_tokens_create_list_revoke(db_url, seed, live_sidecar) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    created = run(db_url, "tokens", "create", "noc-screen", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    url = f"{live_sidecar.url}/v1/accounts/100001"
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    listed = [json.loads(line) for line in run(db_url, "tokens", "list").stdout.splitlines()]
    [entry] = [t for t in listed if t["name"] == "noc-screen"]
    assert entry["role"] == "viewer" and token not in json.dumps(listed)
    revoked = run(db_url, "tokens", "revoke", str(entry["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert requests.get(url, headers=headers, timeout=5).status_code == 401
    assert "already revoked" in run(db_url, "tokens", "revoke", str(entry["id"])).stdout
    assert run(db_url, "tokens", "revoke", "999999").returncode != 0
    assert [
        t["id"]
        for t in map(json.loads, run(db_url, "tokens", "list").stdout.splitlines())
        if t["name"] == "noc-screen"
    ] == []
    everything = run(db_url, "tokens", "list", "--all").stdout
    assert "noc-screen" in everything
    with psycopg.connect(db_url) as c:
        actions = c.execute(
            "SELECT action, before->>'revoked_at' IS NULL, after->>'revoked_at' IS NOT NULL"
            " FROM audit_log WHERE target = %s ORDER BY id",
            (f"token:{entry['id']}",),
        ).fetchall()
    assert actions == [("token.create", True, False), ("token.revoke", True, True)]
