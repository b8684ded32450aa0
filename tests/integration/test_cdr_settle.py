"""CDR intake's money, one CDR or a batch (apolo_settle_cdrs), against the real PostgreSQL.

The HTTP endpoint and ``apolo cdr replay --direct`` both go through ``ingest_many``; these
tests drive it directly to check what a batch adds: running balances, twins inside a batch,
reservations the sweeper expired first, low-balance crossings, concurrent twins.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_lib
from decimal import Decimal
from typing import Any

import psycopg
from conftest import FS_AUTH, TEST_PBX, call_body
from psycopg.rows import dict_row

from sidecar.freeswitch.xml_cdr import CdrRecord, parse_cdr
from sidecar.repo import reservations as reservations_repo
from sidecar.services.cdr_ingest import IngestResult, ingest_many
from sidecar.simulator.cdr_template import build_cdr

ANSWER_US = (int(time.time()) - 3600) * 1_000_000
CALLEE = "5155501234"  # the seed plan rates 51 at 0.60 a minute, 60 s increments


def _call(client: Any, caller: str) -> str:
    uuid = str(uuid_lib.uuid4())
    resp = client.post("/v1/authorize", json=call_body(uuid, caller, CALLEE), auth=FS_AUTH)
    assert resp.get_json()["authorized"] is True
    return uuid


def _record(uuid: str, caller: str, seconds: int) -> CdrRecord:
    return parse_cdr(build_cdr(uuid, caller, CALLEE, ANSWER_US, seconds * 1_000_000, TEST_PBX))


def _ingest(app: Any, db_url: str, records: list[CdrRecord]) -> list[IngestResult]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        results = ingest_many(conn, app.extensions["apolo_rates"], [(r, None) for r in records])
        conn.commit()
    return results


def _rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchall()


def test_batch_runs_balances_in_order_and_charges_twins_once(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="500.00")  # an hour reserved per call
    first, second, unanswered = (_call(client, "100001") for _ in range(3))
    assert seed.balance("100001")["active_calls"] == "3"

    batch = [
        _record(first, "100001", 61),  # two minutes: 1.20
        _record(second, "100001", 30),  # one minute: 0.60
        _record(first, "100001", 61),  # its twin, later in the same batch
        _record(unanswered, "100001", 0),
    ]
    results = _ingest(app, db_url, batch)

    assert [(r.billing_status, r.cost, r.duplicate) for r in results] == [
        ("charged", Decimal("1.2000"), False),
        ("charged", Decimal("0.6000"), False),
        ("charged", Decimal("1.2000"), True),
        ("unanswered", Decimal("0.0000"), False),
    ]
    assert results[2].cdr_id == results[0].cdr_id
    assert _rows(
        db_url, "SELECT amount, balance_after FROM ledger WHERE kind = 'call_charge' ORDER BY id"
    ) == [(Decimal("-1.2000"), Decimal("498.8000")), (Decimal("-0.6000"), Decimal("498.2000"))]
    assert seed.balance("100001") == {
        "balance": "498.2000",
        "reserved": "0.0000",
        "available": "498.2000",
        "active_calls": "0",
    }
    statuses = dict(_rows(db_url, "SELECT call_uuid, status FROM reservations"))
    assert statuses == {first: "charged", second: "charged", unanswered: "released"}

    again = _ingest(app, db_url, [_record(second, "100001", 30)])
    assert again[0].duplicate and again[0].cdr_id == results[1].cdr_id
    assert _rows(db_url, "SELECT count(*) FROM ledger WHERE kind = 'call_charge'") == [(2,)]
    assert seed.balance("100001")["balance"] == "498.2000"


def test_reservation_expired_before_its_cdr_is_charged_without_double_release(
    app, client, seed, db_url
) -> None:  # type: ignore[no-untyped-def]
    seed.account("100002", balance="10.00")
    call = _call(client, "100002")
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        conn.execute("UPDATE reservations SET expires_at = now() - interval '1 s'")
        assert len(reservations_repo.expire_overdue(conn)) == 1
        conn.commit()
    assert seed.balance("100002")["reserved"] == "0.0000"

    (result,) = _ingest(app, db_url, [_record(call, "100002", 61)])

    assert (result.billing_status, result.cost) == ("charged", Decimal("1.2000"))
    assert seed.balance("100002") == {
        "balance": "8.8000",
        "reserved": "0.0000",
        "available": "8.8000",
        "active_calls": "0",
    }
    assert _rows(db_url, "SELECT status FROM reservations") == [("expired",)]


def test_low_balance_alert_once_at_the_crossing_row(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100003", balance="500.00")
    _rows_commit(db_url, "UPDATE accounts SET low_balance_threshold = 499.00")
    calls = [_call(client, "100003") for _ in range(3)]

    _ingest(app, db_url, [_record(c, "100003", 30) for c in calls])  # 0.60 each

    assert _rows(db_url, "SELECT balance_before, balance_after FROM low_balance_alerts") == [
        (Decimal("499.4000"), Decimal("498.8000"))
    ]
    assert _rows(db_url, "SELECT count(*) FROM webhook_outbox") == [(1,)]


def _rows_commit(db_url: str, sql: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(sql)
        conn.commit()


def test_concurrent_twins_store_and_charge_once(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100004", balance="10.00")
    call = _call(client, "100004")
    record = _record(call, "100004", 61)
    barrier = threading.Barrier(2)
    results: list[IngestResult] = []

    def twin() -> None:
        with psycopg.connect(db_url, row_factory=dict_row) as conn:
            barrier.wait()
            results.extend(ingest_many(conn, app.extensions["apolo_rates"], [(record, None)]))
            conn.commit()

    threads = [threading.Thread(target=twin) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert sorted(r.duplicate for r in results) == [False, True]
    assert len({r.cdr_id for r in results}) == 1
    assert _rows(db_url, "SELECT count(*) FROM ledger WHERE kind = 'call_charge'") == [(1,)]
    assert seed.balance("100004")["balance"] == "8.8000"
    assert seed.balance("100004")["reserved"] == "0.0000"
