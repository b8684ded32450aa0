"""Group commit of CDR intake (services.cdr_batcher) against the real PostgreSQL and Redis.

What it must keep from the one-transaction-per-request intake: an answer only after the
commit that stored the CDR, each CDR charged once, and one bad CDR failing alone.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_lib
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import FS_AUTH, TEST_PBX, call_body

from sidecar.db import connect_cli
from sidecar.freeswitch.xml_cdr import CdrRecord, parse_cdr
from sidecar.services.cdr_batcher import CdrBatcher, _Arrival
from sidecar.simulator.cdr_template import build_cdr

ANSWER_US = (int(time.time()) - 3600) * 1_000_000
CALLEE = "5155501234"  # the seed plan: 51 at 0.60 a minute, 60 s increments


def _reserved_records(client: Any, caller: str, count: int) -> list[CdrRecord]:
    records = []
    for _ in range(count):
        uuid = str(uuid_lib.uuid4())
        body = call_body(uuid, caller, CALLEE)
        assert client.post("/v1/authorize", json=body, auth=FS_AUTH).get_json()["authorized"]
        xml = build_cdr(uuid, caller, CALLEE, ANSWER_US, 30_000_000, TEST_PBX)
        records.append(parse_cdr(xml))
    return records


def _stored(db_url: str, uuid: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM cdrs WHERE call_uuid = %s", (uuid,)).fetchone()
    return int(row[0]) if row else 0


def test_concurrent_cdrs_share_commits_and_answer_after_theirs(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("200001", balance="5000.00")
    records = _reserved_records(client, "200001", 24)
    sizes: list[int] = []
    first = threading.Event()

    def slow_first_commit(results: list[Any]) -> None:
        sizes.append(len(results))
        if not first.is_set():  # the others queue up meanwhile: the next batch holds them
            first.set()
            time.sleep(0.3)

    batcher = CdrBatcher(lambda: connect_cli(db_url), app.extensions["apolo_rates"],
                         on_commit=slow_first_commit)  # fmt: skip
    seen_on_answer: dict[str, int] = {}

    def post(record: CdrRecord) -> None:
        result = batcher.ingest(record, None)
        assert result.billing_status == "charged" and result.cost == Decimal("0.6000")
        seen_on_answer[record.uuid] = _stored(db_url, record.uuid)  # another connection

    threads = [threading.Thread(target=post, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    batcher.stop()

    assert seen_on_answer == {r.uuid: 1 for r in records}  # committed before each answer
    assert sum(sizes) == len(records) and max(sizes[1:]) > 1
    assert seed.balance("200001") == {
        "balance": "4985.6000",
        "reserved": "0.0000",
        "available": "4985.6000",
        "active_calls": "0",
    }


class _FailingPlan:
    """The real catalog, except that rating one plan raises (a stand-in for any fault that
    hits one CDR of a batch)."""

    def __init__(self, catalog: Any, plan_id: int) -> None:
        self._catalog, self._plan_id = catalog, plan_id

    def index(self, plan_id: int) -> Any:
        if plan_id == self._plan_id:
            raise RuntimeError("rating failed")
        return self._catalog.index(plan_id)

    def rating(self, plan_id: int) -> Any:
        if plan_id == self._plan_id:
            raise RuntimeError("rating failed")
        return self._catalog.rating(plan_id)

    def __getattr__(self, name: str) -> Any:  # source_rules and the rest: the real ones
        return getattr(self._catalog, name)


def test_one_failing_cdr_fails_alone(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("200002", balance="100.00")
    seed.account("200003", balance="100.00")
    good = _reserved_records(client, "200002", 2)
    (bad,) = _reserved_records(client, "200003", 1)
    catalog = _FailingPlan(app.extensions["apolo_rates"], seed.plans[-1])
    batcher = CdrBatcher(lambda: connect_cli(db_url), catalog)  # type: ignore[arg-type]
    batch = [_Arrival(good[0], None), _Arrival(bad, None), _Arrival(good[1], None)]

    conn = batcher._settle_all(None, batch)  # one batch, as the settler thread would
    if conn is not None:
        conn.close()

    assert [a.answer.result(1).billing_status for a in (batch[0], batch[2])] == ["charged"] * 2
    with pytest.raises(RuntimeError, match="rating failed"):
        batch[1].answer.result(1)
    assert [_stored(db_url, r.uuid) for r in (*good, bad)] == [1, 1, 0]
    assert seed.balance("200003")["balance"] == "100.0000"


def test_database_down_is_an_error_for_the_request(app) -> None:  # type: ignore[no-untyped-def]
    record = parse_cdr(build_cdr(str(uuid_lib.uuid4()), "1", CALLEE, ANSWER_US, 1_000_000))
    batcher = CdrBatcher(
        lambda: psycopg.connect("postgresql://postgres@127.0.0.1:1/nowhere"),
        app.extensions["apolo_rates"],
    )
    with pytest.raises(psycopg.OperationalError):
        batcher.ingest(record, None)
    batcher.stop()
