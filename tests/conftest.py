"""Shared fixtures: a real, freshly migrated test database, real Redis, real gunicorn.

The servers come from DATABASE_URL / REDIS_URL (``make test`` starts private ones); the
tests use their own database ``apolo_test`` and Redis database 15, never the run data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
import requests
from psycopg import sql
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[1]
FS_USER = "freeswitch"
FS_PASSWORD = "test-fs-secret"
# rates, then rate_plans: TRUNCATE locks in this order, and a rate-index rebuild in a running
# sidecar reads them in this order too (sidecar/repo/rates.py); other orders can deadlock
DATA_TABLES = (
    "rates, rate_plans, audit_log, ledger, cdrs, reservations, account_anis, accounts, api_tokens,"
    " cucm_files, users, user_sessions, login_failures, idempotency_keys, trunk_cidrs, trunks,"
    " account_sip_users"
)
# Who the tests' callers are. Unless a test says otherwise, its calls come from the test PBX,
# whose trunk (created with the first seeded account) bills the account whose ANI is the
# caller ID, as Apolo billed every call before issue #11. Tests of the identity rule itself
# use other addresses (203.0.113.0/24) and facts.
TEST_TRUNK = "test-pbx"
TEST_PBX_CIDR = "198.51.100.0/24"
TEST_PBX_IP = "198.51.100.10"
TEST_PBX = {"sip_network_ip": TEST_PBX_IP}


def call_body(uuid: str, caller: str, callee: str = "51987654321", **variables: str) -> dict:
    """A ``POST /v1/authorize`` body as the hook sends it for a call from the test PBX;
    ``variables`` add or replace channel variables."""
    return {
        "uuid": uuid,
        "caller": caller,
        "callee": callee,
        "variables": {**TEST_PBX, **variables},
    }


def _with_db(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


def _redis_db(url: str, index: int) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{index}"


@pytest.fixture(scope="session")
def db_url() -> str:
    server = os.environ.get("DATABASE_URL")
    if not server:
        pytest.exit("DATABASE_URL is not set: run the tests with `make test`", returncode=2)
    name = os.environ.get("APOLO_TEST_DB", "apolo_test")
    url = _with_db(server, name)
    with psycopg.connect(_with_db(server, "postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from sidecar.migrations import upgrade

    with psycopg.connect(url) as conn:
        upgrade(conn)
    os.environ["APOLO_TEST_DATABASE_URL"] = url
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    server = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return _redis_db(server, int(os.environ.get("APOLO_TEST_REDIS_DB", "15")))


@pytest.fixture
def clean(db_url: str, redis_url: str) -> None:
    """Empty every data table and the test Redis database (ids keep growing, never reused)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {DATA_TABLES} CASCADE")  # timings, number_rules too
        conn.execute("DELETE FROM fraud_settings; INSERT INTO fraud_settings DEFAULT VALUES")
        # workers holding sources' number rules reload them (TRUNCATE fires no trigger)
        conn.execute("UPDATE number_rules_version SET version = version + 1")
    redis_lib.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def conn(db_url: str, clean: None) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        yield c


@dataclass
class Seed:
    """Creates plans, rates, accounts and tokens, committed, straight into the test DB."""

    url: str
    plans: list[int] = field(default_factory=list)

    def _conn(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, row_factory=dict_row)

    def plan(self, rates: list[tuple[str, str]] | None = None, **rate_fields: Any) -> str:
        from sidecar.repo import rates as rates_repo

        name = f"plan-{len(self.plans)}-{time.monotonic_ns()}"
        with self._conn() as c:
            plan_id = rates_repo.ensure_plan(c, name)
            for prefix, rpm in rates or []:
                rates_repo.add_rate(
                    c,
                    plan_id,
                    prefix=prefix,
                    name=f"dest {prefix}",
                    rate_per_minute=Decimal(rpm),
                    effective_start=rate_fields.get(
                        "effective_start", datetime(2020, 1, 1, tzinfo=UTC)
                    ),
                    initial_increment=rate_fields.get("initial_increment", 60),
                    increment=rate_fields.get("increment", 60),
                    connection_fee=Decimal(rate_fields.get("connection_fee", "0")),
                )
            c.commit()
        self.plans.append(plan_id)
        return name

    def account(
        self,
        number: str,
        balance: str = "10.00",
        anis: list[str] | None = None,
        rates: list[tuple[str, str]] | None = None,
        type: str = "prepaid",
        max_calls: int | None = None,
        status: str = "active",
        plan: str | None = None,
        credit_limit: str = "0",
    ) -> str:
        from sidecar.services.accounts import create_account

        plan = plan or self.plan(rates if rates is not None else [("51", "0.60")])
        self.test_pbx()
        with self._conn() as c:
            create_account(
                c,
                actor="test",
                number=number,
                plan=plan,
                type_=type,
                balance=Decimal(balance),
                credit_limit=Decimal(credit_limit),
                anis=anis or [number],
                max_calls=max_calls,
            )
            if status != "active":
                c.execute("UPDATE accounts SET status = %s WHERE number = %s", (status, number))
            c.commit()
        return number

    def trunk(
        self,
        name: str,
        cidrs: list[str],
        account: str | None = None,
        trust_caller_id: bool = False,
        trust_billing_header: bool = False,
    ) -> str:
        from sidecar.services.trunks import create_trunk

        with self._conn() as c:
            create_trunk(c, actor="test", name=name, cidrs=cidrs, account=account,
                         trust_caller_id=trust_caller_id,
                         trust_billing_header=trust_billing_header)  # fmt: skip
            c.commit()
        return name

    def test_pbx(self) -> None:
        """The test PBX's trunk (see TEST_TRUNK), once."""
        with self._conn() as c:
            if c.execute("SELECT 1 FROM trunks WHERE name = %s", (TEST_TRUNK,)).fetchone():
                return
        self.trunk(TEST_TRUNK, [TEST_PBX_CIDR], trust_caller_id=True)

    def balance(self, number: str) -> dict[str, str]:
        with self._conn() as c:
            row = c.execute(
                "SELECT balance, reserved, credit_limit, type, active_calls FROM accounts"
                " WHERE number = %s",
                (number,),
            ).fetchone()
        assert row is not None, f"no account {number}"
        credit = row["credit_limit"] if row["type"] == "postpaid" else Decimal(0)
        return {
            "balance": str(row["balance"]),
            "reserved": str(row["reserved"]),
            "available": str(row["balance"] + credit - row["reserved"]),
            "active_calls": str(row["active_calls"]),
        }

    def token(self, role: str = "admin", name: str = "test") -> str:
        from sidecar.auth import hash_token, new_token
        from sidecar.repo import tokens as token_repo

        token = new_token()
        with self._conn() as c:
            token_repo.create(c, name, role, hash_token(token))
            c.commit()
        return token


@pytest.fixture
def seed(db_url: str, clean: None) -> Seed:
    return Seed(db_url)


def make_app(db_url: str, redis_url: str, **overrides: Any):  # type: ignore[no-untyped-def]
    """The sidecar app on the test servers, with settings ``overrides``."""
    from sidecar import create_app

    application = create_app(
        {
            "database_url": db_url,
            "redis_url": redis_url,
            "fs_user": FS_USER,
            "fs_password": FS_PASSWORD,
            "rate_poll_seconds": 0.2,
            **overrides,
        }
    )
    application.testing = True
    return application


@pytest.fixture
def app(db_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    application = make_app(db_url, redis_url)
    yield application
    application.extensions["apolo_rates"].stop()
    application.extensions["apolo_cdrs"].stop()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


FS_AUTH = (FS_USER, FS_PASSWORD)


# ---------------------------------------------------------------- real gunicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SidecarProcess:
    url: str
    proc: subprocess.Popen[bytes]
    fs_user: str = FS_USER
    fs_password: str = FS_PASSWORD

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_sidecar(
    db_url: str, redis_url: str, workers: int = 2, port: int | None = None, **env: str
) -> SidecarProcess:
    port = port or free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "APOLO_FS_USER": FS_USER,
        "APOLO_FS_PASSWORD": FS_PASSWORD,
        "APOLO_RATE_POLL_SECONDS": "0.2",
        "APOLO_LOG_LEVEL": "WARNING",
        **env,
    }
    log = open(ROOT / ".data" / f"sidecar-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sidecar.cli",
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "8",
        ],
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited with {proc.returncode}; see {log.name}")
        try:
            if requests.get(url + "/healthz", timeout=5).status_code in (200, 503):
                return SidecarProcess(url, proc)
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("sidecar did not start within 30 s")


@pytest.fixture(scope="session")
def live_sidecar(db_url: str, redis_url: str) -> Iterator[SidecarProcess]:
    (ROOT / ".data").mkdir(exist_ok=True)
    sidecar = start_sidecar(db_url, redis_url)
    yield sidecar
    sidecar.stop()
