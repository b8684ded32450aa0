"""Helpers of the reporting tests: register the reporting blueprints, store CDRs."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from flask import Flask
from psycopg.rows import dict_row

_uuids = itertools.count(1)


def with_reporting(app: Flask) -> Any:
    """The test client of ``app`` with the rates/reports blueprints (until app.py has them)."""
    from sidecar.api import rates, reports

    for module in (rates, reports):
        if module.bp.name not in app.blueprints:
            app.register_blueprint(module.bp)
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def account_id(db_url: str, number: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute("SELECT id FROM accounts WHERE number = %s", (number,)).fetchone()
    assert row is not None
    return int(row[0])


def add_cdr(
    db_url: str,
    *,
    account: str | None,
    start: datetime,
    billsec: int = 0,
    destination: str = "5112345",
    cost: str | None = None,
    rate_id: int | None = None,
    rate_prefix: str | None = None,
    status: str | None = None,
    hangup_cause: str = "NORMAL_CLEARING",
    caller: str = "100001",
    source: str = "freeswitch",
    leg: str = "a",
    uuid: str | None = None,
    charge: bool = True,
) -> tuple[int, str]:
    """Store a CDR; a charged one also debits its account with a call_charge ledger row
    (what CDR intake does). Returns (cdr id, call uuid)."""
    from sidecar.repo import accounts as accounts_repo
    from sidecar.repo import cdrs as cdrs_repo

    uuid = uuid or f"call-{next(_uuids):06d}-{start.timestamp():.0f}"
    answered = billsec > 0
    if status is None:
        status = "charged" if cost is not None else ("unanswered" if not answered else "unrated")
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        acc = None
        if account is not None:
            acc = c.execute("SELECT id FROM accounts WHERE number = %s", (account,)).fetchone()
            assert acc is not None
        cdr_id = cdrs_repo.insert_new(
            c,
            {
                "source": source,
                "call_uuid": uuid,
                "leg": leg,
                "direction": "inbound",
                "caller": caller,
                "callee": destination,
                "destination": destination,
                "account_id": None if acc is None else acc["id"],
                "start_at": start,
                "answer_at": start + timedelta(seconds=2) if answered else None,
                "end_at": start + timedelta(seconds=2 + billsec),
                "billusec": billsec * 1_000_000,
                "billsec": billsec,
                "hangup_cause": hangup_cause,
                "rate_id": rate_id,
                "rate_prefix": rate_prefix,
                "cost": None if cost is None else Decimal(cost),
                "billing_status": status,
            },
        )
        assert cdr_id is not None
        if charge and status == "charged" and acc is not None and Decimal(cost or 0) > 0:
            accounts_repo.move_balance(
                c, int(acc["id"]), -Decimal(cost or 0), kind="call_charge", actor="freeswitch",
                cdr_id=cdr_id,
            )  # fmt: skip
        c.commit()
    return cdr_id, uuid


def rate_ids(db_url: str, plan: str) -> dict[str, int]:
    with psycopg.connect(db_url) as c:
        rows = c.execute(
            "SELECT r.prefix, r.id FROM rates r JOIN rate_plans p ON p.id = r.plan_id"
            " WHERE p.name = %s",
            (plan,),
        ).fetchall()
    return {prefix: int(rid) for prefix, rid in rows}


def query(db_url: str, sql: str, *params: object) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        return c.execute(sql, params).fetchall()


def execute(db_url: str, sql: str, *params: object) -> None:
    with psycopg.connect(db_url) as c:
        c.execute(sql, params)
        c.commit()
