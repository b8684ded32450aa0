"""Rate plans and rates through the API: roles, CRUD, search, audit, CSV, warnings."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from reporting_helpers import bearer, query, with_reporting


@pytest.fixture
def api(app, seed):  # type: ignore[no-untyped-def]
    return with_reporting(app)


def test_reads_need_a_token_and_writes_need_admin(api, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    assert api.get("/v1/rate-plans").status_code == 401
    assert api.get(f"/v1/rate-plans/{plan}/rates", headers=bearer("apo_nope")).status_code == 401
    viewer = bearer(seed.token("viewer"))
    operator = bearer(seed.token("operator"))
    switch = bearer(seed.token("switch"))
    assert api.get("/v1/rate-plans", headers=switch).status_code == 403
    assert api.get(f"/v1/rate-plans/{plan}/rates", headers=viewer).status_code == 200
    for headers in (viewer, operator):
        resp = api.post("/v1/rate-plans", json={"name": "x"}, headers=headers)
        assert resp.status_code == 403
        resp = api.post(
            f"/v1/rate-plans/{plan}/rates",
            json={"prefix": "52", "rate_per_minute": "1"},
            headers=headers,
        )
        assert resp.status_code == 403
        assert api.post(f"/v1/rate-plans/{plan}/import", data="prefix,rate_per_minute\n1,1\n",
                        headers=headers).status_code == 403  # fmt: skip
    assert query(seed.url, "SELECT count(*) AS n FROM rates")[0]["n"] == 1


def test_plan_and_rate_crud_is_audited(api, seed) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin", name="alice"))
    resp = api.post("/v1/rate-plans", json={"name": "retail", "currency": "pen"}, headers=admin)
    assert resp.status_code == 201 and resp.get_json()["currency"] == "PEN"
    dup = api.post("/v1/rate-plans", json={"name": "retail"}, headers=admin)
    assert dup.status_code == 409

    resp = api.post(
        "/v1/rate-plans/retail/rates",
        json={"prefix": "+5119", "name": "Lima", "rate_per_minute": "0.015",
              "connection_fee": "0.01", "increment": 6, "priority": 2},
        headers=admin,
    )  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    rate = resp.get_json()
    assert (rate["prefix"], rate["rate_per_minute"], rate["connection_fee"]) == (
        "5119", "0.015000", "0.010000",
    )  # fmt: skip
    assert (rate["increment"], rate["initial_increment"], rate["priority"]) == (6, 6, 2)

    resp = api.patch(f"/v1/rates/{rate['id']}", json={"rate_per_minute": "0.02"}, headers=admin)
    assert resp.status_code == 200 and resp.get_json()["rate_per_minute"] == "0.020000"
    audit = query(seed.url, "SELECT actor, action, target, before, after FROM audit_log"
                  " WHERE action LIKE 'rate%%' ORDER BY id")  # fmt: skip
    assert [a["action"] for a in audit] == ["rate_plan.create", "rate.create", "rate.update"]
    assert {a["actor"] for a in audit} == {"token:alice"}
    update = audit[2]
    assert Decimal(update["before"]["rate_per_minute"]) == Decimal("0.015")
    assert Decimal(update["after"]["rate_per_minute"]) == Decimal("0.02")

    assert api.delete(f"/v1/rates/{rate['id']}", headers=admin).status_code == 204
    assert api.get(f"/v1/rates/{rate['id']}", headers=admin).status_code == 404
    assert api.delete("/v1/rate-plans/retail", headers=admin).status_code == 204
    assert api.get("/v1/rate-plans/retail", headers=admin).status_code == 404
    actions = [a["action"] for a in query(seed.url, "SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["rate.delete", "rate_plan.delete"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prefix": "51a", "rate_per_minute": "1"}, "prefix"),
        ({"prefix": "51", "rate_per_minute": "1e3"}, "rate_per_minute"),
        ({"prefix": "51", "rate_per_minute": True}, "rate_per_minute"),
        ({"prefix": "51", "rate_per_minute": "-1"}, "rate_per_minute"),
        ({"prefix": "51", "rate_per_minute": "1", "increment": 0}, "increment"),
        ({"prefix": "51"}, "rate_per_minute"),
        ({"prefix": "51", "rate_per_minute": "1", "plan_id": 3}, None),
    ],
)
def test_bad_rates_are_refused_and_change_nothing(api, seed, body, field) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    resp = api.post(f"/v1/rate-plans/{plan}/rates", json=body, headers=bearer(seed.token()))
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    if field:
        assert field in error["details"]["fields"]
    assert query(seed.url, "SELECT count(*) AS n FROM rates")[0]["n"] == 1
    assert (
        query(seed.url, "SELECT count(*) AS n FROM audit_log WHERE action LIKE 'rate.%%'")[0]["n"]
        == 0
    )


def test_end_before_start_is_refused_on_update(api, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    admin = bearer(seed.token())
    rate = api.get(f"/v1/rate-plans/{plan}/rates", headers=admin).get_json()["rates"][0]
    resp = api.patch(f"/v1/rates/{rate['id']}", json={"effective_end": "2019-01-01"}, headers=admin)
    assert resp.status_code == 400
    assert api.get(f"/v1/rates/{rate['id']}", headers=admin).get_json()["effective_end"] is None


def test_search_by_prefix_number_and_name_with_keyset_pages(api, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.6"), ("511", "0.5"), ("5119", "0.4"), ("52", "1"), ("1", "0.1")])
    viewer = bearer(seed.token("viewer"))

    def prefixes(qs: str) -> list[str]:
        resp = api.get(f"/v1/rate-plans/{plan}/rates?{qs}", headers=viewer)
        assert resp.status_code == 200, resp.get_json()
        return sorted(r["prefix"] for r in resp.get_json()["rates"])

    assert prefixes("prefix=51") == ["51", "511", "5119"]
    assert prefixes("match=%2B51199999") == ["51", "511", "5119"]
    assert prefixes("match=5120") == ["51"]
    assert prefixes("name=DEST%2052") == ["52"]
    assert prefixes("name=%25") == []  # a literal %, not a wildcard
    assert api.get(f"/v1/rate-plans/{plan}/rates?prefix=5x", headers=viewer).status_code == 400

    seen: list[str] = []
    cursor = ""
    while True:
        body = api.get(f"/v1/rate-plans/{plan}/rates?limit=2{cursor}", headers=viewer).get_json()
        seen += [r["prefix"] for r in body["rates"]]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert sorted(seen) == ["1", "51", "511", "5119", "52"] and len(seen) == 5


def test_csv_import_appends_reports_warnings_and_is_audited(api, seed) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token("admin", name="bob"))
    data = (
        "prefix,name,rate_per_minute,priority,effective_start,effective_end\r\n"
        "51,Peru,0.10,0,2024-01-01,\r\n"
        "519,Peru mobile,0.10,0,2024-01-01,\r\n"
        "52,Mexico,0.20,0,2024-03-01,2024-04-01\r\n"
        "52,Mexico promo,0.05,9,2024-01-01,\r\n"
    )
    resp = api.post("/v1/rate-plans/imported/import", data=data, content_type="text/csv",
                    headers=admin)  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["imported"] == 4
    assert sorted((w["kind"], w["prefix"]) for w in body["warnings"]) == [
        ("never_in_effect", "52"),
        ("same_price_as_parent", "519"),
    ]
    listed = api.get("/v1/rate-plans/imported/warnings", headers=admin).get_json()
    assert listed["count"] == 2
    rows = query(
        seed.url,
        "SELECT prefix, rate_per_minute FROM rates r JOIN rate_plans p"
        " ON p.id = r.plan_id WHERE p.name = 'imported' ORDER BY prefix, priority",
    )
    assert [(r["prefix"], r["rate_per_minute"]) for r in rows] == [
        ("51", Decimal("0.1")), ("519", Decimal("0.1")), ("52", Decimal("0.2")),
        ("52", Decimal("0.05")),
    ]  # fmt: skip
    audit = query(seed.url, "SELECT actor, after FROM audit_log WHERE action = 'rates.import'")
    assert audit == [{"actor": "token:bob",
                      "after": {"source": "csv upload", "rates": 4, "replace": False}}]  # fmt: skip


def test_csv_import_with_a_bad_row_imports_nothing(api, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    admin = bearer(seed.token())
    data = "prefix,rate_per_minute\n52,0.1\n53,abc\n54,0.1\n52,0.3\n"
    resp = api.post(f"/v1/rate-plans/{plan}/import?replace=true", data=data,
                    content_type="text/csv", headers=admin)  # fmt: skip
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert [(e["line"], e["field"]) for e in error["details"]["errors"]] == [
        (3, "rate_per_minute"), (5, "prefix"),
    ]  # fmt: skip
    assert error["details"]["count"] == 2
    rows = query(seed.url, "SELECT prefix FROM rates")
    assert [r["prefix"] for r in rows] == ["51"]  # replace rolled back too
    assert (
        query(seed.url, "SELECT count(*) AS n FROM audit_log WHERE action = 'rates.import'")[0]["n"]
        == 0
    )


def test_csv_import_refuses_a_malformed_header(api, seed) -> None:  # type: ignore[no-untyped-def]
    resp = api.post("/v1/rate-plans/p/import", data="prefx,rate\n1,2\n", content_type="text/csv",
                    headers=bearer(seed.token()))  # fmt: skip
    assert resp.status_code == 422
    assert {e["field"] for e in resp.get_json()["error"]["details"]["errors"]} == {"header"}
    assert query(seed.url, "SELECT count(*) AS n FROM rate_plans WHERE name = 'p'")[0]["n"] == 0


def test_export_is_streamed_csv_with_formulas_escaped(api, seed) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token())
    data = 'prefix,name,rate_per_minute\n51,"=HYPERLINK(""x"")",0.5\n52,@SUM(A1),0.25\n'
    assert api.post("/v1/rate-plans/exp/import", data=data, content_type="text/csv",
                    headers=admin).status_code == 201  # fmt: skip
    resp = api.get("/v1/rate-plans/exp/export.csv", headers=bearer(seed.token("viewer")))
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [(r["prefix"], r["name"], r["rate_per_minute"]) for r in rows] == [
        ("51", "'=HYPERLINK(\"x\")", "0.5"), ("52", "'@SUM(A1)", "0.25"),
    ]  # fmt: skip
    assert api.get("/v1/rate-plans/none/export.csv", headers=admin).status_code == 404


def test_plan_in_use_cannot_be_deleted(api, seed) -> None:  # type: ignore[no-untyped-def]
    plan = seed.plan([("51", "0.60")])
    seed.account("100001", plan=plan)
    resp = api.delete(f"/v1/rate-plans/{plan}", headers=bearer(seed.token()))
    assert resp.status_code == 409
    assert (
        api.get(f"/v1/rate-plans/{plan}", headers=bearer(seed.token())).get_json()["accounts"] == 1
    )


def test_import_larger_than_the_document_limit_streams_in(api, seed) -> None:  # type: ignore[no-untyped-def]
    rows = 200_000
    data = "prefix,rate_per_minute\n" + "".join(f"{1_000_000 + i},0.{i % 9 + 1}\n"
                                                 for i in range(rows))  # fmt: skip
    limit = api.application.config["MAX_CONTENT_LENGTH"]
    assert len(data) > limit  # APOLO_MAX_DOCUMENT_BYTES does not cap rate files
    resp = api.post("/v1/rate-plans/big/import", data=data, content_type="text/csv",
                    headers=bearer(seed.token()))  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["imported"] == rows
    assert query(seed.url, "SELECT count(*) AS n FROM rates")[0]["n"] == rows
