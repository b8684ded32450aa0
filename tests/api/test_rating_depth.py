"""Timings, spans, minimum charge, free seconds, fallback and number rules end to end:
API and services on the real test database (issue #13)."""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import FS_AUTH, TEST_PBX, Seed, call_body
from psycopg.rows import dict_row

from sidecar.config import load_settings
from sidecar.freeswitch.caller_facts import caller_facts
from sidecar.freeswitch.xml_cdr import parse_cdr
from sidecar.services import cdr_ingest
from sidecar.services.authorize import AuthorizeRequest, authorize
from sidecar.simulator.cdr_template import build_cdr

MX = "America/Mexico_City"  # UTC-6 all year
# Monday 2026-03-02 19:58:30 in Mexico City
ANSWER = datetime(2026, 3, 3, 1, 58, 30, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def admin(seed: Seed) -> dict[str, str]:
    return {"Authorization": f"Bearer {seed.token('admin')}"}


def db(seed: Seed, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(seed.url, row_factory=dict_row) as c:
        rows = c.execute(sql, params).fetchall() if "SELECT" in sql.upper()[:12] else []
        if not rows:
            c.commit()
        return rows


def peak_plan(client: Any, seed: Seed, headers: dict[str, str], name: str, peak: str,
              offpeak: str, *, increments: str = "60", fee: str = "0") -> None:  # fmt: skip
    assert client.post("/v1/rate-plans", json={"name": name, "timezone": MX},
                       headers=headers).status_code == 201  # fmt: skip
    resp = client.post(
        f"/v1/rate-plans/{name}/timings",
        headers=headers,
        json={"name": "peak", "days": "mon-fri", "from": "08:00", "to": "20:00"},
    )
    assert resp.status_code == 201, resp.get_json()
    for rpm, timing, priority in ((peak, "peak", 1), (offpeak, None, 0)):
        body = {"prefix": "52", "rate_per_minute": rpm, "timing": timing, "priority": priority,
                "increment": increments, "connection_fee": fee,
                "effective_start": "2020-01-01T00:00:00Z"}  # fmt: skip
        resp = client.post(f"/v1/rate-plans/{name}/rates", json=body, headers=headers)
        assert resp.status_code == 201, resp.get_json()


def post_cdr(app: Any, uuid: str, caller: str, callee: str, answer: datetime, seconds: int,
             switchname: str | None = None) -> cdr_ingest.IngestResult:  # fmt: skip
    answer_us = (answer - EPOCH) // timedelta(microseconds=1)
    record = parse_cdr(build_cdr(uuid, caller, callee, answer_us, seconds * 1_000_000, TEST_PBX))
    if switchname is not None:
        record = dataclasses.replace(record, switchname=switchname)
    with psycopg.connect(app.config["SETTINGS"].database_url, row_factory=dict_row) as c:
        result = cdr_ingest.ingest(c, app.extensions["apolo_rates"], record, None)
        c.commit()
    return result


def test_a_cdr_across_the_end_of_peak_is_priced_in_spans(app, client, seed) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    peak_plan(client, seed, headers, "mx", "0.10", "0.04", fee="0.05")
    seed.account("100001", balance="10.00", plan="mx")
    uuid = str(uuidlib.uuid4())
    auth = client.post("/v1/authorize", auth=FS_AUTH,
                       json=call_body(uuid, "100001", "5255512345"))  # fmt: skip
    assert auth.get_json()["authorized"], auth.get_json()
    # 19:58:30 local, 150 s at 60/60 -> billed 180: 90 s at 0.10, 60 + 30 rounding at 0.04;
    # 0.05 + (9 + 3.6) / 60 = 0.26
    result = post_cdr(app, uuid, "100001", "5255512345", ANSWER, 150)
    assert result.billing_status == "charged" and result.cost == Decimal("0.2600")
    cdr = client.get(f"/v1/cdrs/{uuid}", headers=headers).get_json()["legs"][0]
    ids = {r["timing"]: r["id"] for r in client.get(
        "/v1/rate-plans/mx/rates", headers=headers).get_json()["rates"]}  # fmt: skip
    assert cdr["cost"] == "0.2600" and cdr["billed_seconds"] == 180
    assert cdr["rate_id"] == ids["peak"] and "priced in 2 spans" in cdr["billing_note"]
    assert cdr["spans"] == [
        {"rate_id": ids["peak"], "start": "2026-03-03T01:58:30.000000Z", "seconds": 90,
         "rate_per_minute": "0.100000", "amount": "0.150000"},
        {"rate_id": ids[None], "start": "2026-03-03T02:00:00.000000Z", "seconds": 90,
         "rate_per_minute": "0.040000", "amount": "0.060000"},
    ]  # fmt: skip
    assert seed.balance("100001")["balance"] == "9.7400"


def test_max_duration_is_computed_across_boundaries(app, client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    peak_plan(client, seed, headers, "mx1", "0.60", "0.06", increments="1")
    seed.account("100002", balance="1.00", plan="mx1")
    seed.account("100003", balance="0.10", plan="mx1")
    catalog, settings = app.extensions["apolo_rates"], load_settings(database_url=db_url)

    def auth(caller: str, at: datetime):  # type: ignore[no-untyped-def]
        req = AuthorizeRequest(
            str(uuidlib.uuid4()), caller, "525512345678", caller_facts(TEST_PBX, caller)
        )
        with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as c:
            return authorize(c, catalog, settings, req, at)

    # 19:59:00 local with 1.00: 60 s of peak cost 0.60, 0.40 more buys 400 s off-peak
    before_cheap = auth("100002", datetime(2026, 3, 3, 1, 59, tzinfo=UTC))
    assert before_cheap.authorized and before_cheap.max_duration == 460
    assert before_cheap.reserved == Decimal("1.0000")
    # 07:59:00 local with 0.10: 60 s off-peak cost 0.06, 0.04 buys 4 s of peak -> 64; the
    # reservation (0.10 of the 35.46 an hour may cost) is held for those 64 s plus grace,
    # though 3600 * 0.10 / 35.46 alone would let it expire after 11 s
    before_peak = auth("100003", datetime(2026, 3, 2, 13, 59, tzinfo=UTC))
    assert before_peak.authorized and before_peak.max_duration == 64
    (hold,) = db(seed, "SELECT extract(epoch FROM expires_at - created_at) AS s"
                 " FROM reservations WHERE call_uuid = %s", before_peak.uuid)  # fmt: skip
    assert hold["s"] >= 600 + 64


def test_minimum_charge_and_free_seconds(app, client, seed) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    assert client.post("/v1/rate-plans", json={"name": "mf"}, headers=headers).status_code == 201
    body = {"prefix": "51", "rate_per_minute": "0.60", "minimum_charge": "0.25",
            "free_seconds": "5", "increment": "1", "effective_start": "2020-01-01"}  # fmt: skip
    assert client.post("/v1/rate-plans/mf/rates", json=body, headers=headers).status_code == 201
    seed.account("100004", balance="5.00", plan="mf")
    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    free = post_cdr(app, str(uuidlib.uuid4()), "100004", "5155501234", at, 5)
    short = post_cdr(app, str(uuidlib.uuid4()), "100004", "5155501234", at, 6)
    long = post_cdr(app, str(uuidlib.uuid4()), "100004", "5155501234", at, 30)
    assert (free.billing_status, free.cost) == ("charged", Decimal("0.0000"))
    assert short.cost == Decimal("0.2500")  # 6 s = 0.06, raised to the minimum
    assert long.cost == Decimal("0.3000")  # billed from second 0: 30 s = 0.30
    notes = {r["cost"]: r["billing_note"] for r in db(seed, "SELECT cost, billing_note FROM cdrs")}
    assert "free" in notes[Decimal("0.0000")] and "minimum" in notes[Decimal("0.2500")]
    # authorization asks for the shortest charged call: 0.25 (6 s)
    seed.account("100005", balance="0.20", plan="mf")
    resp = client.post("/v1/authorize", auth=FS_AUTH,
                       json=call_body(str(uuidlib.uuid4()), "100005", "5155501234"))  # fmt: skip
    assert resp.get_json()["reason"] == "insufficient_balance"


def test_a_plan_falls_back_to_its_parent_and_cycles_are_refused(client, seed) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    base = seed.plan([("44", "0.05"), ("1", "0.01")])
    child = client.post("/v1/rate-plans", headers=headers, json={"name": "child", "parent": base})
    assert child.status_code == 201 and child.get_json()["parent"] == base
    body = {"prefix": "447", "rate_per_minute": "0.30", "effective_start": "2020-01-01"}
    assert client.post("/v1/rate-plans/child/rates", json=body, headers=headers).status_code == 201
    seed.account("100006", balance="5.00", plan="child")

    def rate_of(callee: str) -> Any:
        resp = client.post("/v1/authorize", auth=FS_AUTH,
                           json=call_body(str(uuidlib.uuid4()), "100006", callee))  # fmt: skip
        return resp.get_json()["rate"]

    assert rate_of("447700900123")["rate_per_minute"] == "0.300000"  # the plan's own
    assert rate_of("442079460000")["rate_per_minute"] == "0.050000"  # the parent's
    assert rate_of("15034401001")["rate_per_minute"] == "0.010000"
    cycle = client.patch(f"/v1/rate-plans/{base}", json={"parent": "child"}, headers=headers)
    assert cycle.status_code == 409 and cycle.get_json()["error"]["code"] == "plan_cycle"
    self_parent = client.patch("/v1/rate-plans/child", json={"parent": "child"}, headers=headers)
    assert self_parent.status_code == 409
    assert client.delete(f"/v1/rate-plans/{base}", headers=headers).status_code == 409
    unknown = client.post("/v1/rate-plans", headers=headers, json={"name": "x", "parent": "nope"})
    assert unknown.status_code == 404
    bad_tz = client.post(
        "/v1/rate-plans", headers=headers, json={"name": "y", "timezone": "Mars/X"}
    )
    assert bad_tz.status_code == 400


def test_a_national_freeswitch_number(app, client, seed) -> None:  # type: ignore[no-untyped-def]
    """Users of switch fs-mx dial 10-digit national numbers; the switch's rule adds 52."""
    headers = admin(seed)
    plan = seed.plan([("5255", "0.20"), ("1", "0.01")])
    seed.account("100007", balance="5.00", plan=plan)
    rule = {"switch": "fs-mx", "direction": "callee", "add": "52", "min_length": 10,
            "max_length": 10}  # fmt: skip
    assert client.post("/v1/number-rules", json=rule, headers=headers).status_code == 201
    uuid = str(uuidlib.uuid4())
    body = {**call_body(uuid, "100007", "5512345678"), "switch": "fs-mx"}
    auth = client.post("/v1/authorize", auth=FS_AUTH, json=body).get_json()
    assert auth["authorized"] and auth["destination"] == "525512345678"
    assert auth["rate"]["prefix"] == "5255"
    other_switch = {**body, "uuid": str(uuidlib.uuid4()), "switch": "fs-us"}
    assert client.post("/v1/authorize", auth=FS_AUTH, json=other_switch).get_json()["reason"] == (
        "no_rate"
    )
    result = post_cdr(app, uuid, "100007", "5512345678", datetime(2026, 3, 2, 12, tzinfo=UTC),
                      60, switchname="fs-mx")  # fmt: skip
    assert result.cost == Decimal("0.2000")
    (row,) = db(seed, "SELECT callee, destination FROM cdrs WHERE call_uuid = %s", uuid)
    assert (row["callee"], row["destination"]) == ("5512345678", "525512345678")
    normalized = client.get("/v1/number-rules/normalize?number=5512345678&switch=fs-mx",
                            headers=headers).get_json()  # fmt: skip
    assert normalized["normalized"] == "525512345678"


def test_number_rules_are_kept_in_order_and_audited(client, seed) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    plan = seed.plan([("1", "0.01")])
    add = lambda **b: client.post("/v1/number-rules", json=b, headers=headers)  # noqa: E731
    first = add(plan=plan, direction="callee", strip="011").get_json()
    last = add(plan=plan, direction="callee", strip="9011").get_json()
    front = add(plan=plan, direction="callee", strip="9", add="1", position=0).get_json()
    listed = client.get(f"/v1/number-rules?plan={plan}&direction=callee", headers=headers)
    order = [(r["id"], r["position"]) for r in listed.get_json()["rules"]]
    assert order == [(front["id"], 0), (first["id"], 1), (last["id"], 2)]
    assert add(plan=plan, switch="fs1", direction="callee").status_code == 400  # two owners
    assert add(plan=plan, direction="sideways").status_code == 400
    assert add(plan=plan, direction="callee", strip="9a").status_code == 400
    assert add(plan=plan, direction="callee", min_length=5, max_length=4).status_code == 400
    changed = client.patch(f"/v1/number-rules/{last['id']}", json={"max_length": 20},
                           headers=headers)  # fmt: skip
    assert changed.status_code == 200 and changed.get_json()["max_length"] == 20
    viewer = {"Authorization": f"Bearer {seed.token('viewer')}"}
    assert client.post("/v1/number-rules", json={}, headers=viewer).status_code == 403
    assert client.delete(f"/v1/number-rules/{first['id']}", headers=headers).status_code == 204
    actions = [r["action"] for r in db(seed, "SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("number_rule.create") == 3
    assert "number_rule.update" in actions and "number_rule.delete" in actions


def test_timings_through_the_api(client, seed) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    assert client.post("/v1/rate-plans", json={"name": "t"}, headers=headers).status_code == 201
    post = lambda body: client.post("/v1/rate-plans/t/timings", json=body, headers=headers)  # noqa: E731
    holidays = post({"name": "holidays", "dates": ["2026-12-25", "2027-01-01"]})
    assert holidays.status_code == 201
    assert holidays.get_json()["dates"] == ["2026-12-25", "2027-01-01"]
    assert post({"name": "holidays", "dates": "2026-12-31"}).status_code == 409
    assert post({"name": "nothing"}).status_code == 400
    assert post({"name": "bad", "days": "funday"}).status_code == 400
    assert post({"name": "bad", "from": "25:00"}).status_code == 400
    night = post({"name": "night", "from": "22:00", "to": "06:00"}).get_json()
    assert (night["from"], night["to"], night["days"]) == ("22:00", "06:00", "")
    rate = {"prefix": "1", "rate_per_minute": "0.01", "timing": "night"}
    assert client.post("/v1/rate-plans/t/rates", json=rate, headers=headers).status_code == 201
    unknown = client.post("/v1/rate-plans/t/rates", headers=headers,
                          json={**rate, "timing": "nope"})  # fmt: skip
    assert (
        unknown.status_code == 400 and "timing" in unknown.get_json()["error"]["details"]["fields"]
    )
    in_use = client.delete("/v1/rate-plans/t/timings/night", headers=headers)
    assert in_use.status_code == 409
    patched = client.patch("/v1/rate-plans/t/timings/night", headers=headers,
                           json={"days": "sat,sun", "from": "00:00", "to": "24:00"})  # fmt: skip
    assert patched.status_code == 200 and patched.get_json()["days"] == "sat,sun"
    listed = client.get("/v1/rate-plans/t/timings", headers=headers).get_json()["timings"]
    assert [(t["name"], t["rates"]) for t in listed] == [("holidays", 0), ("night", 1)]
    assert client.delete("/v1/rate-plans/t/timings/holidays", headers=headers).status_code == 204


def test_rates_csv_carries_the_new_columns(client, seed) -> None:  # type: ignore[no-untyped-def]
    headers = admin(seed)
    assert client.post("/v1/rate-plans", json={"name": "csv"}, headers=headers).status_code == 201
    assert client.post("/v1/rate-plans/csv/timings", headers=headers,
                       json={"name": "peak", "days": "mon-fri"}).status_code == 201  # fmt: skip
    good = ("prefix,rate_per_minute,timing,minimum_charge,free_seconds,priority,effective_start\n"
            "52,0.10,peak,0.5,3,1,2026-01-01\n52,0.04,,,,0,2026-01-01\n")  # fmt: skip
    bad = good + "53,0.2,offpeak,,,0,2026-01-01\n52,0.05,peak,,,1,2026-01-01\n"
    resp = client.post("/v1/rate-plans/csv/import", data=bad, headers={
        **headers, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 422
    errors = resp.get_json()["error"]["details"]["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(4, "timing"), (5, "prefix")]
    resp = client.post("/v1/rate-plans/csv/import", data=good, headers={
        **headers, "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status_code == 201 and resp.get_json()["imported"] == 2
    exported = client.get("/v1/rate-plans/csv/export.csv", headers=headers).get_data(as_text=True)
    lines = exported.splitlines()
    assert lines[0].endswith("timing,minimum_charge,free_seconds")
    assert lines[1].endswith(",0,true,,0,0") and lines[2].endswith(",1,true,peak,0.5,3")


def test_rerating_splits_again(app, client, seed) -> None:  # type: ignore[no-untyped-def]
    """A CDR priced at one rate is re-split once the plan gets a cheaper evening rate."""
    headers = admin(seed)
    assert client.post("/v1/rate-plans", json={"name": "rr", "timezone": MX},
                       headers=headers).status_code == 201  # fmt: skip
    body = {"prefix": "52", "rate_per_minute": "0.10", "effective_start": "2020-01-01"}
    assert client.post("/v1/rate-plans/rr/rates", json=body, headers=headers).status_code == 201
    seed.account("100008", balance="10.00", plan="rr")
    uuid = str(uuidlib.uuid4())
    first = post_cdr(app, uuid, "100008", "5255512345", ANSWER, 150)  # 180 s at 0.10 = 0.30
    assert first.cost == Decimal("0.3000")
    assert (
        client.post(
            "/v1/rate-plans/rr/timings",
            headers=headers,
            json={"name": "evening", "from": "20:00", "to": "24:00"},
        ).status_code
        == 201
    )
    cheap = {**body, "rate_per_minute": "0.04", "timing": "evening", "priority": 1}
    assert client.post("/v1/rate-plans/rr/rates", json=cheap, headers=headers).status_code == 201
    scope = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-04T00:00:00Z"}
    preview = client.post("/v1/rerating/preview", json=scope, headers=headers).get_json()
    assert [(i["old_cost"], i["new_cost"]) for i in preview["items"]] == [("0.3000", "0.2100")]
    applied = client.post("/v1/rerating/apply", json=scope, headers=headers).get_json()
    assert applied["changed"] == 1
    (cdr,) = db(seed, "SELECT cost, spans FROM cdrs WHERE call_uuid = %s", uuid)
    assert cdr["cost"] == Decimal("0.2100") and [s["seconds"] for s in cdr["spans"]] == [90, 90]
    assert seed.balance("100008")["balance"] == "9.7900"
    again = client.post("/v1/rerating/preview", json=scope, headers=headers).get_json()
    assert again["changed"] == 0


@pytest.mark.parametrize("route", ["/v1/rate-plans/nope/timings", "/v1/number-rules?plan=nope"])
def test_unknown_plans_are_404(client, seed, route) -> None:  # type: ignore[no-untyped-def]
    assert client.get(route, headers=admin(seed)).status_code == 404
