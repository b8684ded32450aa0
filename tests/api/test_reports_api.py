"""GET /v1/reports/traffic and /v1/reports/top-destinations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from reporting_helpers import add_cdr, bearer, rate_ids, with_reporting

T = datetime(2026, 4, 10, 9, 0, tzinfo=UTC)
# (account, hour offset, billsec, cost, prefix) ; billsec 0 = unanswered
CALLS = [
    ("100001", 0, 60, "0.6000", "51"),
    ("100001", 0, 0, None, "51"),
    ("100001", 0, 125, "1.3000", "52"),
    ("200002", 1, 30, "0.3000", "51"),
    ("200002", 1, 0, None, "52"),
    ("200002", 26, 200, "2.0000", "52"),
]


@pytest.fixture
def api(app, seed):  # type: ignore[no-untyped-def]
    client = with_reporting(app)
    plan = seed.plan([("51", "0.60"), ("52", "0.60")])
    seed.account("100001", balance="100", plan=plan)
    seed.account("200002", balance="100", plan=plan)
    ids = rate_ids(seed.url, plan)
    for account, hours, billsec, cost, prefix in CALLS:
        add_cdr(seed.url, account=account, start=T + timedelta(hours=hours), billsec=billsec,
                cost=cost, destination=prefix + "12345", rate_id=ids[prefix],
                rate_prefix=prefix if cost else None)  # fmt: skip
    # a B leg of a call is stored not_billed and must not count
    add_cdr(seed.url, account="100001", start=T, billsec=60, status="not_billed", leg="b")
    return client


def expected(calls: list[tuple[str, int, int, str | None, str]]) -> dict[str, object]:
    answered = [c for c in calls if c[2] > 0]
    billsec = sum(c[2] for c in answered)
    revenue = sum((Decimal(c[3]) for c in calls if c[3]), Decimal("0.0000"))

    def q(value: Decimal, places: str) -> str:
        return str(value.quantize(Decimal(places), ROUND_HALF_UP))

    return {
        "calls": len(calls),
        "answered": len(answered),
        "minutes": q(Decimal(billsec) / 60, "0.01"),
        "revenue": str(revenue),
        "asr_percent": q(Decimal(len(answered) * 100) / len(calls), "0.01"),
        "acd_seconds": q(Decimal(billsec) / len(answered), "0.1") if answered else None,
    }


def get(api, seed, path: str):  # type: ignore[no-untyped-def]
    resp = api.get(path, headers=bearer(seed.token("viewer")))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


RANGE = "from=2026-04-10T00:00:00Z&to=2026-04-12T00:00:00Z"


def test_per_hour(api, seed) -> None:  # type: ignore[no-untyped-def]
    body = get(api, seed, f"/v1/reports/traffic?group=hour&{RANGE}")
    rows = {r["key"]: {k: v for k, v in r.items() if k not in ("key", "label")}
            for r in body["rows"]}  # fmt: skip
    assert rows == {
        "2026-04-10T09:00:00.000000Z": expected([c for c in CALLS if c[1] == 0]),
        "2026-04-10T10:00:00.000000Z": expected([c for c in CALLS if c[1] == 1]),
        "2026-04-11T11:00:00.000000Z": expected([c for c in CALLS if c[1] == 26]),
    }
    totals = expected(CALLS)
    assert body["totals"] == totals


def test_per_day_account_and_destination(api, seed) -> None:  # type: ignore[no-untyped-def]
    days = get(api, seed, f"/v1/reports/traffic?group=day&{RANGE}")["rows"]
    assert [(r["key"], r["calls"]) for r in days] == [
        ("2026-04-10T00:00:00.000000Z", 5), ("2026-04-11T00:00:00.000000Z", 1),
    ]  # fmt: skip
    accounts = get(api, seed, f"/v1/reports/traffic?group=account&{RANGE}")["rows"]
    for row in accounts:
        mine = [c for c in CALLS if c[0] == row["key"]]
        assert {k: v for k, v in row.items() if k not in ("key", "label")} == expected(mine)
    assert [r["key"] for r in accounts] == ["100001", "200002"]
    one = get(api, seed, f"/v1/reports/traffic?group=account&account=200002&{RANGE}")["rows"]
    assert [r["key"] for r in one] == ["200002"]
    dest = get(api, seed, f"/v1/reports/traffic?group=destination&{RANGE}")["rows"]
    by_key = {r["key"]: r for r in dest}
    assert by_key["51"]["revenue"] == "0.9000" and by_key["51"]["label"] == "dest 51"
    assert by_key["52"]["revenue"] == "3.3000"
    assert by_key[""]["answered"] == 0  # unanswered calls have no rate prefix


def test_top_destinations_by_revenue(api, seed) -> None:  # type: ignore[no-untyped-def]
    rows = get(api, seed, f"/v1/reports/top-destinations?{RANGE}&limit=2")["rows"]
    assert [(r["key"], r["revenue"]) for r in rows] == [("52", "3.3000"), ("51", "0.9000")]


@pytest.mark.parametrize(
    "qs",
    ["group=week&" + RANGE, "group=day", "group=day&from=2026-04-12&to=2026-04-10",
     "group=day&from=2020-01-01&to=2026-01-01", "group=day&from=x&to=y"],
)  # fmt: skip
def test_bad_report_requests(api, seed, qs) -> None:  # type: ignore[no-untyped-def]
    resp = api.get(f"/v1/reports/traffic?{qs}", headers=bearer(seed.token("viewer")))
    assert resp.status_code == 400


def test_report_roles(api, seed) -> None:  # type: ignore[no-untyped-def]
    assert api.get(f"/v1/reports/traffic?{RANGE}").status_code == 401
    switch = bearer(seed.token("switch"))
    assert api.get(f"/v1/reports/top-destinations?{RANGE}", headers=switch).status_code == 403
