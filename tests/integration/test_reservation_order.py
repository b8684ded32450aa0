"""A reservation and its call's CDR, committed in either order (sql/013_reservation_after_cdr.sql).

The switch gives up on an authorization after its budget and posts the refused call's CDR;
during a failover the authorization can commit after that CDR. Whichever commits second,
the reservation must not stay open holding the caller's money.
"""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from decimal import Decimal

import psycopg
from conftest import FS_AUTH, TEST_PBX, call_body

from sidecar.simulator.cdr_template import build_cdr

CALLER, CALLEE = "100001", "51987654321"


def _refused_cdr(call_uuid: str) -> bytes:
    return build_cdr(call_uuid, CALLER, CALLEE, time.time_ns() // 1000, 0, TEST_PBX,
                     hangup_cause="CALL_REJECTED")  # fmt: skip


def _post_cdr(client, call_uuid: str):  # type: ignore[no-untyped-def]
    return client.post(f"/freeswitch/cdr?uuid=a_{call_uuid}", data=_refused_cdr(call_uuid),
                       content_type="text/xml", auth=FS_AUTH)  # fmt: skip


def _state(db_url: str, call_uuid: str) -> tuple[str, str, Decimal, int, Decimal]:
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT r.status, coalesce(r.close_reason, ''), a.reserved, a.active_calls, a.balance"
            " FROM reservations r JOIN accounts a ON a.id = r.account_id"
            " WHERE r.call_uuid = %s",
            (call_uuid,),
        ).fetchone()
    assert row is not None, "no reservation"
    return row  # type: ignore[return-value]


def test_authorization_committed_after_the_cdr_releases_its_reservation(
    client, seed, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    seed.account(CALLER, balance="10.00")
    call_uuid = str(uuidlib.uuid4())
    assert _post_cdr(client, call_uuid).status_code == 200  # the switch gave up: CDR first

    late = client.post("/v1/authorize", json=call_body(call_uuid, CALLER, CALLEE), auth=FS_AUTH)
    assert late.status_code == 200 and late.get_json()["authorized"] is True

    status, why, reserved, active, balance = _state(db_url, call_uuid)
    assert status == "released", why
    assert "CDR was stored before it" in why
    assert (reserved, active, balance) == (Decimal(0), 0, Decimal("10.00"))


def test_cdr_that_missed_a_reservation_committing_meanwhile_releases_it(
    app, client, seed, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    """The CDR's intake reads "no reservation" while the authorization's transaction holds the
    account; it then waits for that lock and commits second."""
    seed.account(CALLER, balance="10.00")
    call_uuid = str(uuidlib.uuid4())
    with psycopg.connect(db_url) as reserving:
        account_id = reserving.execute(
            "SELECT id FROM accounts WHERE number = %s", (CALLER,)
        ).fetchone()[0]  # type: ignore[index]
        reason = reserving.execute(
            "SELECT reason FROM apolo_reserve(%s, %s, 1.00, 0.60, 100, '10 minutes', NULL, %s, %s)",
            (account_id, call_uuid, CALLER, CALLEE),
        ).fetchone()
        assert reason == ("authorized",)  # not committed: the account row stays locked

        answers: list[int] = []
        poster = threading.Thread(
            target=lambda: answers.append(_post_cdr(app.test_client(), call_uuid).status_code)
        )
        poster.start()
        with psycopg.connect(db_url, autocommit=True) as watch:
            for _ in range(100):  # until the CDR's settle waits for the account lock
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%apolo_settle_cdrs%'"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the CDR never waited for the account lock")
        reserving.commit()
        poster.join(timeout=30)
    assert answers == [200]

    status, why, reserved, active, balance = _state(db_url, call_uuid)
    assert status == "released", why
    assert why.startswith("CDR ") and why.endswith("was stored before it")
    assert (reserved, active, balance) == (Decimal(0), 0, Decimal("10.00"))


def test_a_call_authorized_first_is_charged_as_before(client, seed, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed.account(CALLER, balance="10.00")
    call_uuid = str(uuidlib.uuid4())
    answer = client.post(
        "/v1/authorize", json=call_body(call_uuid, CALLER, CALLEE), auth=FS_AUTH
    ).get_json()
    assert answer["authorized"] is True
    answered = time.time_ns() // 1000 - 30_000_000
    cdr = build_cdr(call_uuid, CALLER, CALLEE, answered, 30_000_000, TEST_PBX)
    resp = client.post(f"/freeswitch/cdr?uuid=a_{call_uuid}", data=cdr, content_type="text/xml",
                       auth=FS_AUTH)  # fmt: skip
    assert resp.status_code == 200 and resp.get_json()["billing_status"] == "charged"
    status, _, reserved, active, balance = _state(db_url, call_uuid)
    assert (status, reserved, active) == ("charged", Decimal(0), 0)
    assert balance == Decimal("10.00") - Decimal(resp.get_json()["cost"])
