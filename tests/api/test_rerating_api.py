"""Rerating: preview changes nothing; apply adjusts balances per CDR, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from reporting_helpers import add_cdr, bearer, execute, query, rate_ids, with_reporting

from sidecar.rating import Rate, call_cost

T = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
RANGE = {"from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"}


def rate(rpm: str) -> Rate:
    return Rate(0, "51", "", Decimal(rpm), Decimal(0), 60, 60, T, None)


@pytest.fixture
def world(app, seed):  # type: ignore[no-untyped-def]
    client = with_reporting(app)
    plan = seed.plan([("51", "0.60"), ("52", "1.00")])
    other = seed.plan([("51", "0.60")])
    seed.account("100001", balance="20", plan=plan)
    seed.account("200002", balance="20", plan=other)
    ids = rate_ids(seed.url, plan)
    other_ids = rate_ids(seed.url, other)
    made = {}
    for name, account, hours, billsec, prefix in [
        ("a1", "100001", 0, 60, "51"), ("a2", "100001", 1, 90, "51"),
        ("a3", "100001", 2, 30, "52"), ("late", "100001", 30, 60, "51"),
        ("b1", "200002", 0, 120, "51"),
    ]:  # fmt: skip
        cost = call_cost(rate("0.60" if prefix == "51" else "1.00"), billsec)
        made[name] = add_cdr(seed.url, account=account, start=T + timedelta(hours=hours),
                             billsec=billsec, cost=str(cost), destination=prefix + "99",
                             rate_id=(other_ids if account == "200002" else ids)[prefix],
                             rate_prefix=prefix)  # fmt: skip
    # the fix: 51 becomes 0.30 in the first plan (52 keeps its price)
    execute(seed.url, "UPDATE rates SET rate_per_minute = 0.30 WHERE id = %s", ids["51"])
    return {"client": client, "plan": plan, "cdrs": made, "ids": ids, "seed": seed}


def balances(url: str) -> dict[str, Decimal]:
    return {r["number"]: r["balance"] for r in query(url, "SELECT number, balance FROM accounts")}


def adjustments(url: str) -> list[dict[str, object]]:
    return query(url, "SELECT account_id, cdr_id, amount, actor FROM ledger"
                 " WHERE kind = 'adjustment' ORDER BY cdr_id")  # fmt: skip


def test_preview_lists_changes_and_changes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    seed, client = world["seed"], world["client"]
    before = balances(seed.url)
    resp = client.post("/v1/rerating/preview", json=RANGE, headers=bearer(seed.token("operator")))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    items = {i["cdr_id"]: i for i in body["items"]}
    a1, a2 = world["cdrs"]["a1"][0], world["cdrs"]["a2"][0]
    assert set(items) == {a1, a2}  # 52 kept its price; "late" is outside; b1's plan unchanged
    for cdr_id, billsec in ((a1, 60), (a2, 90)):
        old, new = call_cost(rate("0.60"), billsec), call_cost(rate("0.30"), billsec)
        assert (items[cdr_id]["old_cost"], items[cdr_id]["new_cost"]) == (str(old), str(new))
        assert Decimal(items[cdr_id]["delta"]) == new - old
    total = sum(Decimal(i["delta"]) for i in body["items"])
    assert body["accounts"] == {
        "100001": {"cdrs": 2, "old_cost": "1.8000", "new_cost": "0.9000", "delta": str(total)}
    }
    assert Decimal(body["total_delta"]) == total == Decimal("-0.9000")
    assert balances(seed.url) == before
    assert adjustments(seed.url) == []
    assert query(seed.url, "SELECT count(*) AS n FROM rerate_runs")[0]["n"] == 0


def test_apply_credits_per_cdr_and_is_idempotent(world) -> None:  # type: ignore[no-untyped-def]
    seed, client = world["seed"], world["client"]
    admin = bearer(seed.token("admin", name="carol"))
    before = balances(seed.url)
    resp = client.post("/v1/rerating/apply", json=RANGE, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["changed"] == 2 and body["run_id"] is not None
    after = balances(seed.url)
    assert after["100001"] - before["100001"] == Decimal("0.9000")
    assert after["200002"] == before["200002"]
    rows = adjustments(seed.url)
    a1, a2 = world["cdrs"]["a1"][0], world["cdrs"]["a2"][0]
    assert [(r["cdr_id"], r["amount"], r["actor"]) for r in rows] == [
        (a1, Decimal("0.3000"), "token:carol"), (a2, Decimal("0.6000"), "token:carol"),
    ]  # fmt: skip
    costs = {r["id"]: r["cost"] for r in query(seed.url, "SELECT id, cost FROM cdrs")}
    assert (costs[a1], costs[a2]) == (Decimal("0.3000"), Decimal("0.6000"))
    items = query(seed.url, "SELECT cdr_id, old_cost, new_cost FROM rerate_items ORDER BY cdr_id")
    assert [(i["old_cost"], i["new_cost"]) for i in items] == [
        (Decimal("0.6000"), Decimal("0.3000")), (Decimal("1.2000"), Decimal("0.6000")),
    ]  # fmt: skip
    audit = query(seed.url, "SELECT actor, after FROM audit_log WHERE action = 'rerate.apply'")
    assert audit[0]["actor"] == "token:carol" and audit[0]["after"]["changed"] == 2

    # the call's detail shows the charge and its adjustment
    detail = client.get(f"/v1/cdrs/{world['cdrs']['a2'][1]}", headers=admin).get_json()
    assert [(e["kind"], e["amount"]) for e in detail["legs"][0]["ledger"]] == [
        ("call_charge", "-1.2000"), ("adjustment", "0.6000"),
    ]  # fmt: skip

    again = client.post("/v1/rerating/apply", json=RANGE, headers=admin).get_json()
    assert (again["changed"], again["run_id"], again["total_delta"]) == (0, None, "0.0000")
    assert balances(seed.url) == after
    assert len(adjustments(seed.url)) == 2
    runs = client.get("/v1/rerating/runs", headers=admin).get_json()["runs"]
    assert [(r["cdrs"], r["total_delta"]) for r in runs] == [(2, "-0.9000")]


def test_price_rise_debits_and_scope_filters(world) -> None:  # type: ignore[no-untyped-def]
    seed, client = world["seed"], world["client"]
    execute(seed.url, "UPDATE rates SET rate_per_minute = 0.90 WHERE plan_id ="
            " (SELECT id FROM rate_plans WHERE name = %s)", world["plan"])  # fmt: skip
    admin = bearer(seed.token())
    before = balances(seed.url)
    scope = {**RANGE, "account": "100001", "plan": world["plan"]}
    body = client.post("/v1/rerating/apply", json=scope, headers=admin).get_json()
    # 51: 0.60 -> 0.90 for 60 s and 90 s (2 min billed); 52: 1.00 -> 0.90 for 30 s (1 min)
    assert Decimal(body["total_delta"]) == Decimal("0.3") + Decimal("0.6") - Decimal("0.1")
    assert balances(seed.url)["100001"] == before["100001"] - Decimal("0.8")
    other = {**RANGE, "account": "200002", "plan": world["plan"]}
    assert client.post("/v1/rerating/apply", json=other, headers=admin).get_json()["changed"] == 0


def test_cdr_without_a_rate_now_is_listed_and_left_alone(world) -> None:  # type: ignore[no-untyped-def]
    seed, client = world["seed"], world["client"]
    execute(seed.url, "DELETE FROM rates WHERE id = %s", world["ids"]["52"])
    body = client.post("/v1/rerating/apply", json=RANGE, headers=bearer(seed.token())).get_json()
    assert (body["changed"], body["no_rate"]) == (2, 1)
    a3 = world["cdrs"]["a3"][0]
    assert [i["status"] for i in body["items"] if i["cdr_id"] == a3] == ["no_rate"]
    assert query(seed.url, "SELECT cost FROM cdrs WHERE id = %s", a3)[0]["cost"] == Decimal("1")


@pytest.mark.parametrize(
    ("body", "status"),
    [({"from": "2026-05-02", "to": "2026-05-01"}, 400), ({"from": "x", "to": "y"}, 400),
     ({**RANGE, "plan": "nope"}, 404), ({**RANGE, "account": "nope"}, 404),
     ({**RANGE, "account": 5}, 400)],
)  # fmt: skip
def test_bad_scopes(world, body, status) -> None:  # type: ignore[no-untyped-def]
    seed, client = world["seed"], world["client"]
    resp = client.post("/v1/rerating/apply", json=body, headers=bearer(seed.token()))
    assert resp.status_code == status
    assert adjustments(seed.url) == []


def test_roles(world) -> None:  # type: ignore[no-untyped-def]
    seed, client = world["seed"], world["client"]
    assert client.post("/v1/rerating/preview", json=RANGE).status_code == 401
    viewer, operator = bearer(seed.token("viewer")), bearer(seed.token("operator"))
    assert client.post("/v1/rerating/preview", json=RANGE, headers=viewer).status_code == 403
    assert client.post("/v1/rerating/apply", json=RANGE, headers=operator).status_code == 403
    assert adjustments(seed.url) == []


def test_cli_preview_then_apply(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from sidecar.cli.reports_cmd import rerate

    seed = world["seed"]
    monkeypatch.setenv("DATABASE_URL", seed.url)
    monkeypatch.setenv("USER", "ops")
    args = ["--from", RANGE["from"], "--to", RANGE["to"], "--account", "100001"]
    before = balances(seed.url)
    preview = CliRunner().invoke(rerate, ["preview", *args])
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.output)["total_delta"] == "-0.9000"
    assert balances(seed.url) == before
    applied = CliRunner().invoke(rerate, ["apply", *args])
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.output)["changed"] == 2
    assert balances(seed.url)["100001"] == before["100001"] + Decimal("0.9")
    assert {r["actor"] for r in adjustments(seed.url)} == {"cli:ops"}
    bad = CliRunner().invoke(rerate, ["apply", "--from", "2026-05-02", "--to", "2026-05-01"])
    assert bad.exit_code != 0
