"""``apolo control`` driving the real switch over its event socket."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from e2e.conftest import BLOCK, Control
from e2e.harness import Harness, unique, wait_for
from e2e.sipp import UacRun


def connected(control: Control) -> None:
    wait_for(lambda: ": connected, " in control.output(), 15, "apolo control to connect")


def reservation(db_url: str, account: str) -> dict[str, Any]:
    """The account's one reservation ({} before the call is authorized)."""
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        rows = c.execute(
            "SELECT r.* FROM reservations r JOIN accounts a ON a.id = r.account_id"
            " WHERE a.number = %s",
            (account,),
        ).fetchall()
    assert len(rows) <= 1, rows
    return rows[0] if rows else {}


def test_control_extends_past_one_block_then_cuts_when_the_money_runs_out(
    e2e: Harness, control_factory: Any
) -> None:
    # the threshold leaves the worker a second before the switch's own hangup (+4 s after
    # answer, fired 3 to 4.5 s after it) could come
    control = control_factory(APOLO_EXTEND_THRESHOLD="3")
    connected(control)
    # 0.01 a second: the first block pays 5 s, the balance two blocks
    caller = e2e.caller(balance="0.10")
    run = e2e.call(caller, "51" + unique("9"), hold_ms=30_000)
    assert run.returncode == 0, run.errors
    [outcome] = run.outcomes
    assert outcome.kind == "ended_by_switch" and outcome.talk is not None
    assert BLOCK + 1 < outcome.talk <= 2 * BLOCK, control.output()

    [cdr] = e2e.billed_cdrs(caller, 1)
    uuid = cdr.api["call_uuid"]
    assert cdr.api["hangup_cause"] == "ALLOTTED_TIMEOUT"
    assert BLOCK < cdr.api["billed_seconds"] <= 2 * BLOCK
    assert cdr.cost == caller.rate.cost(cdr.billusec) <= Decimal("0.10")
    res = reservation(e2e.db_url, caller.account)
    assert res["extensions"] == 1 and res["status"] != "open"
    assert res["max_duration"] == 2 * BLOCK and Decimal(res["amount"]) == Decimal("0.10")
    log = control.output()
    assert f"extended {uuid} to {2 * BLOCK}s" in log
    assert f"no extension for {uuid} (insufficient_balance)" in log
    account = e2e.account(caller.account)
    assert Decimal(account["balance"]) == Decimal("0.10") - cdr.cost >= 0
    assert Decimal(account["reserved"]) == 0


def test_freeswitch_restarted_mid_call_leaves_no_reservation_open(
    e2e: Harness, control_factory: Any
) -> None:
    control = control_factory(
        APOLO_EXTEND_THRESHOLD="3", APOLO_RECONCILE_SECONDS="1", APOLO_RECONCILE_GRACE_SECONDS="3"
    )
    connected(control)
    caller = e2e.caller(balance="5.00")
    result: dict[str, UacRun] = {}
    talk = threading.Thread(
        target=lambda: result.update(run=e2e.call(caller, "51" + unique("9"), hold_ms=30_000))
    )
    talk.start()
    wait_for(
        lambda: reservation(e2e.db_url, caller.account).get("answered_at") is not None,
        10, "apolo control to take over the answered call",
    )  # fmt: skip
    e2e.switch.restart()
    talk.join(40)
    assert result["run"].kinds() == ["ended_by_switch"]

    def settled() -> bool:
        account = e2e.account(caller.account)
        return Decimal(account["reserved"]) == 0 and account["reservations"] == []

    wait_for(settled, 30, "the reservation to be closed after the restart")
    res = reservation(e2e.db_url, caller.account)
    with psycopg.connect(e2e.db_url, row_factory=dict_row) as c:
        cdrs = c.execute("SELECT * FROM cdrs WHERE call_uuid = %s", (res["call_uuid"],)).fetchall()
        audit = c.execute(
            "SELECT * FROM control_audit WHERE call_uuid = %s", (res["call_uuid"],)
        ).fetchall()
    # FreeSWITCH posts no CDR once its shutdown has begun: reconciliation released it
    assert cdrs == []
    assert res["status"] == "released"
    assert [a["action"] for a in audit] == ["orphan_released"]
    assert Decimal(e2e.account(caller.account)["balance"]) == Decimal("5.00")
