"""Low-balance alerts: detected in the charge transaction, webhooks delivered after commit
to a real HTTP receiver on loopback, signed, retried with back-off."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row
from reporting_helpers import add_cdr, execute, query, rate_ids

from sidecar.cli.reports_cmd import alerts as alerts_cli
from sidecar.repo import accounts as accounts_repo
from sidecar.services import rerating
from sidecar.services.alerts import (
    WebhookSettings,
    check_low_balance,
    deliver_due,
    delivery_loop,
    verify,
)

pytestmark = pytest.mark.integration
SECRET = "test-webhook-secret"


@dataclass
class Receiver:
    url: str = ""
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    seen: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.seen.append({"headers": dict(self.headers), "body": body})
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            state.arrived.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/apolo"
    yield state
    server.shutdown()
    server.server_close()


def settings(receiver: Receiver, **kw: Any) -> WebhookSettings:
    return WebhookSettings(url=receiver.url, secret=SECRET, timeout=5, **kw)


def charge(url: str, number: str, amount: str, *, commit: bool = True) -> int | None:
    """A call-charge-like debit with the low-balance check, in one transaction."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        account = accounts_repo.get(conn, number, lock=True)
        assert account is not None
        before = Decimal(account["balance"])
        after = accounts_repo.move_balance(
            conn, int(account["id"]), -Decimal(amount), kind="call_charge", actor="test"
        )
        alert = check_low_balance(conn, int(account["id"]), before, after)
        if commit:
            conn.commit()
        else:
            conn.rollback()
    return alert


def threshold(url: str, number: str, value: str | None) -> None:
    execute(url, "UPDATE accounts SET low_balance_threshold = %s WHERE number = %s", value, number)


def test_alert_only_on_a_downward_crossing(seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    threshold(seed.url, "100001", "5.00")
    assert charge(seed.url, "100001", "1.00") is None  # 6 -> 5: not below
    first = charge(seed.url, "100001", "0.0001")  # 5 -> 4.9999: crossed
    assert first is not None
    assert charge(seed.url, "100001", "2.00") is None  # already below
    execute(seed.url, "UPDATE accounts SET balance = 7 WHERE number = '100001'")
    assert charge(seed.url, "100001", "3.00") is not None  # 7 -> 4: crossed again
    assert charge(seed.url, "100001", "0", commit=True) is None
    rows = query(seed.url, "SELECT threshold, balance_before, balance_after FROM"
                 " low_balance_alerts ORDER BY id")  # fmt: skip
    assert [(r["balance_before"], r["balance_after"]) for r in rows] == [
        (Decimal("5.0000"), Decimal("4.9999")), (Decimal("7.0000"), Decimal("4.0000")),
    ]  # fmt: skip
    outbox = query(seed.url, "SELECT alert_id, event, payload FROM webhook_outbox ORDER BY id")
    assert [o["alert_id"] for o in outbox] == [first, first + 1]
    assert outbox[0]["payload"]["balance_after"] == "4.9999"
    assert outbox[0]["payload"]["threshold"] == "5.0000"


def test_no_threshold_or_rolled_back_charge_leaves_nothing(seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    assert charge(seed.url, "100001", "5.00") is None  # no threshold set
    threshold(seed.url, "100001", "2.00")
    execute(seed.url, "UPDATE accounts SET balance = 3 WHERE number = '100001'")
    assert charge(seed.url, "100001", "2.00", commit=False) is not None  # 3 -> 1, rolled back
    assert query(seed.url, "SELECT count(*) AS n FROM low_balance_alerts")[0]["n"] == 0
    assert query(seed.url, "SELECT count(*) AS n FROM webhook_outbox")[0]["n"] == 0


def test_delivery_is_signed_and_marked(seed, receiver) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    threshold(seed.url, "100001", "5.00")
    alert = charge(seed.url, "100001", "2.50")
    with psycopg.connect(seed.url, row_factory=dict_row, autocommit=True) as conn:
        assert deliver_due(conn, settings(receiver)) == (1, 0)
        assert deliver_due(conn, settings(receiver)) == (0, 0)  # delivered once
    (hit,) = receiver.seen
    headers = hit["headers"]
    assert verify(SECRET, headers["X-Apolo-Timestamp"], hit["body"],
                  headers["X-Apolo-Signature"], time.time())  # fmt: skip
    assert not verify("other-secret", headers["X-Apolo-Timestamp"], hit["body"],
                      headers["X-Apolo-Signature"], time.time())  # fmt: skip
    assert not verify(SECRET, headers["X-Apolo-Timestamp"], hit["body"] + b" ",
                      headers["X-Apolo-Signature"], time.time())  # fmt: skip
    payload = json.loads(hit["body"])
    assert (payload["event"], payload["account"], payload["alert_id"]) == (
        "account.low_balance", "100001", alert,
    )  # fmt: skip
    assert (payload["balance_before"], payload["balance_after"]) == ("6.0000", "3.5000")
    row = query(seed.url, "SELECT delivered_at, attempts FROM webhook_outbox")[0]
    assert row["delivered_at"] is not None and row["attempts"] == 1


def test_failures_are_retried_with_backoff(seed, receiver) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    threshold(seed.url, "100001", "5.00")
    charge(seed.url, "100001", "2.50")
    receiver.statuses = [500, 503]
    config = settings(receiver, retry_base=0.3, retry_max=10)
    with psycopg.connect(seed.url, row_factory=dict_row, autocommit=True) as conn:
        assert deliver_due(conn, config) == (0, 1)
        assert deliver_due(conn, config) == (0, 0)  # not due yet
        row = query(seed.url, "SELECT attempts, last_error, next_attempt_at - now() AS wait"
                    " FROM webhook_outbox")[0]  # fmt: skip
        assert (row["attempts"], row["last_error"]) == (1, "HTTP 500")
        assert timedelta(0) < row["wait"] <= timedelta(seconds=0.3)
        time.sleep(0.35)
        assert deliver_due(conn, config) == (0, 1)  # second failure waits 0.6 s
        wait = query(seed.url, "SELECT next_attempt_at - now() AS w FROM webhook_outbox")[0]["w"]
        assert timedelta(seconds=0.3) < wait <= timedelta(seconds=0.6)
        time.sleep(0.65)
        assert deliver_due(conn, config) == (1, 0)
    ids = {hit["headers"]["X-Apolo-Delivery"] for hit in receiver.seen}
    assert len(receiver.seen) == 3 and len(ids) == 1  # one delivery id across retries


def test_unreachable_receiver_counts_as_failure_and_max_attempts_stop(seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    threshold(seed.url, "100001", "5.00")
    charge(seed.url, "100001", "2.50")
    from conftest import free_port

    dead = WebhookSettings(url=f"http://127.0.0.1:{free_port()}/", secret=SECRET, timeout=1,
                           retry_base=0, max_attempts=2)  # fmt: skip
    with psycopg.connect(seed.url, row_factory=dict_row, autocommit=True) as conn:
        assert deliver_due(conn, dead) == (0, 1)
        assert deliver_due(conn, dead) == (0, 1)
        assert deliver_due(conn, dead) == (0, 0)  # gave up after max_attempts
    row = query(seed.url, "SELECT attempts, delivered_at, last_error FROM webhook_outbox")[0]
    assert row["attempts"] == 2 and row["delivered_at"] is None
    assert "Error" in row["last_error"]


def test_loop_wakes_on_commit(seed, receiver) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    threshold(seed.url, "100001", "5.00")
    stop = threading.Event()
    loop = threading.Thread(
        target=delivery_loop, args=(seed.url, settings(receiver, poll=60), stop), daemon=True
    )
    loop.start()
    try:
        time.sleep(0.5)  # the loop is LISTENing
        started = time.monotonic()
        charge(seed.url, "100001", "2.00")
        assert receiver.arrived.wait(10), "webhook not delivered"
        assert time.monotonic() - started < 10  # woken by NOTIFY, not the 60 s poll
    finally:
        stop.set()
        execute(seed.url, "NOTIFY apolo_webhooks")
        loop.join(10)
    assert not loop.is_alive()
    assert json.loads(receiver.seen[0]["body"])["balance_after"] == "4.0000"


def test_cli_deliver_once(seed, receiver, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="6.00")
    threshold(seed.url, "100001", "5.00")
    charge(seed.url, "100001", "2.00")
    monkeypatch.setenv("DATABASE_URL", seed.url)
    monkeypatch.delenv("APOLO_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("APOLO_WEBHOOK_URL", receiver.url)
    result = CliRunner().invoke(alerts_cli, ["deliver", "--once"])
    assert result.exit_code != 0 and "APOLO_WEBHOOK_SECRET" in result.output
    monkeypatch.setenv("APOLO_WEBHOOK_SECRET", SECRET)
    result = CliRunner().invoke(alerts_cli, ["deliver", "--once"])
    assert result.exit_code == 0, result.output
    assert "delivered 1" in result.output and len(receiver.seen) == 1


def test_rerating_debit_raises_an_alert(seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    seed.account("100001", balance="5.50", plan=plan)
    threshold(seed.url, "100001", "5.00")
    t = datetime(2026, 5, 1, 10, tzinfo=UTC)
    add_cdr(seed.url, account="100001", start=t, billsec=60, cost="0.4000",
            destination="5199", rate_id=rate_ids(seed.url, plan)["51"])  # fmt: skip
    # 5.50 - 0.40 = 5.10; rerating at 0.60 debits 0.20 more: 5.10 -> 4.90 crosses 5.00
    with psycopg.connect(seed.url, row_factory=dict_row) as conn:
        scope = rerating.Scope(t - timedelta(hours=1), t + timedelta(hours=1))
        result = rerating.apply(conn, scope, "test")
        conn.commit()
    assert result["total_delta"] == "0.2000"
    rows = query(seed.url, "SELECT balance_before, balance_after FROM low_balance_alerts")
    assert [(r["balance_before"], r["balance_after"]) for r in rows] == [
        (Decimal("5.1000"), Decimal("4.9000"))
    ]
