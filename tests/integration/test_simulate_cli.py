"""``apolo simulate`` against a real sidecar: every authorized call charged once, money adds up."""

from __future__ import annotations

import re
from decimal import Decimal

import psycopg
import pytest
from click.testing import CliRunner
from conftest import TEST_PBX_IP
from psycopg.rows import dict_row

from sidecar.cli.demo_cmd import DEMO_ACCOUNTS, DEMO_RATES
from sidecar.cli.main import cli
from sidecar.cli.simulate_cmd import DEFAULT_CALLERS, DEFAULT_DESTINATIONS
from sidecar.simulator.runner import SimConfig, Summary, plan_call

INITIAL = {"100001": "1000.00", "100002": "1.00", "100003": "0", "100004": "25.00"}


def summary_value(output: str, label: str) -> int:
    match = re.search(rf"^{label}: (\d+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return int(match.group(1))


def query(db_url: str, sql: str, *params: object) -> list[dict[str, object]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        return c.execute(sql, params).fetchall()


# --- no sidecar needed ------------------------------------------------------------------


def test_defaults_match_the_demo_data() -> None:
    demo_anis = {ani for account in DEMO_ACCOUNTS for ani in account[4]}
    assert set(DEFAULT_CALLERS) == demo_anis
    prefixes = [rate[0] for rate in DEMO_RATES]
    longest = {max((p for p in prefixes if d.startswith(p)), key=len) for d in DEFAULT_DESTINATIONS}
    assert longest == set(prefixes)  # each destination is rated, each demo rate is used


def test_call_plan_is_seeded() -> None:
    cfg = SimConfig(url="http://x", auth=("u", "p"), calls=200, concurrency=1,
                    callers=DEFAULT_CALLERS, destinations=DEFAULT_DESTINATIONS, seed=7)  # fmt: skip
    plan = [plan_call(cfg, i) for i in range(200)]
    assert plan == [plan_call(cfg, i) for i in range(200)]
    other = SimConfig(**{**cfg.__dict__, "seed": 8})
    assert plan != [plan_call(other, i) for i in range(200)]
    twice = sum(call.post_twice for call in plan)
    assert 5 <= twice <= 40  # about 10%


def test_latency_percentiles() -> None:
    summary = Summary(planned=0, latencies_ms=[float(n) for n in range(100, 0, -1)])
    assert (summary.percentile(50), summary.percentile(95), summary.percentile(100)) == (
        50.0,
        95.0,
        100.0,
    )
    assert Summary(planned=0).percentile(95) == 0.0


# --- against the live sidecar -------------------------------------------------------------


@pytest.mark.integration
def test_simulation_charges_each_authorized_call_once(seed, live_sidecar, db_url: str) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance=INITIAL["100001"])
    seed.account("100002", balance=INITIAL["100002"])  # one minute: later calls are denied
    seed.account("100003", balance=INITIAL["100003"], type="postpaid", credit_limit="20.00",
                 max_calls=1)  # fmt: skip
    seed.account("100004", balance=INITIAL["100004"], status="suspended")
    # 100001 twice: half the calls can be paid for; 100009 has no account
    callers = "100001,100001,100002,100003,100004,100009"
    destinations = "51987654321,5114567890,34911234567"  # 34: no rate in these plans

    result = CliRunner().invoke(
        cli,
        ["simulate", "--calls", "20", "--concurrency", "5", "--duration", "1",
         "--speedup", "10", "--seed", "1", "--url", live_sidecar.url, "--source-ip", TEST_PBX_IP,
         "--callers", callers, "--destinations", destinations],
        env={"APOLO_FS_PASSWORD": live_sidecar.fs_password},
        catch_exceptions=False,
    )  # fmt: skip
    out = result.output
    assert result.exit_code == 0, out
    for label in ("calls", "authorized", "denied", "cdrs posted", "total charged",
                  "authorize latency ms"):  # fmt: skip
        assert re.search(rf"^{label}: ", out, re.MULTILINE), out
    assert "calls: 20 (started 20)" in out
    authorized = summary_value(out, "authorized")
    assert 0 < authorized < 20
    assert summary_value(out, "authorize errors") == 0
    posted = summary_value(out, "cdrs posted")
    assert f"(accepted 20, duplicates {posted - 20}, errors 0)" in out

    # every call left exactly one CDR; every authorized call exactly one charged one
    cdrs = query(db_url, "SELECT call_uuid, billing_status, cost FROM cdrs")
    assert len(cdrs) == len({c["call_uuid"] for c in cdrs}) == 20
    per_reservation = query(
        db_url,
        "SELECT r.status, count(c.id) FILTER (WHERE c.billing_status = 'charged') AS charged,"
        " count(c.id) AS cdrs FROM reservations r LEFT JOIN cdrs c ON c.call_uuid = r.call_uuid"
        " GROUP BY r.id, r.status",
    )
    assert len(per_reservation) == authorized
    assert all(r == {"status": "charged", "charged": 1, "cdrs": 1} for r in per_reservation)

    charged = sum((Decimal(c["cost"]) for c in cdrs if c["cost"] is not None), Decimal(0))  # type: ignore[arg-type]
    assert re.search(rf"^total charged: {re.escape(str(charged))}$", out, re.MULTILINE), out

    accounts = query(
        db_url,
        "SELECT a.number, a.balance, a.reserved, a.active_calls,"
        " (SELECT coalesce(sum(cost), 0) FROM cdrs c WHERE c.account_id = a.id) AS costs,"
        " (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.account_id = a.id) AS ledger"
        " FROM accounts a ORDER BY a.number",
    )
    assert [a["number"] for a in accounts] == sorted(INITIAL)
    for a in accounts:
        assert (a["reserved"], a["active_calls"]) == (0, 0), a
        assert a["balance"] == Decimal(INITIAL[str(a["number"])]) - a["costs"], a  # type: ignore[operator]
        assert a["balance"] == a["ledger"], a
