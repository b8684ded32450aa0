"""Wire conventions of every JSON route: RFC 3339 UTC timestamps, money as decimal strings."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta, timezone

from test_cdr_api import CDR, authorize, post_capture, record_of

from sidecar.jsonfmt import rfc3339

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rfc3339_is_utc_with_microseconds() -> None:
    lima = timezone(timedelta(hours=-5))
    assert rfc3339(datetime(2026, 12, 5, 6, 19, 59, 123456, tzinfo=lima)) == (
        "2026-12-05T11:19:59.123456Z"
    )
    assert rfc3339(datetime(2026, 12, 5, 11, 19, 59, tzinfo=UTC)) == "2026-12-05T11:19:59.000000Z"
    assert rfc3339(datetime(2026, 12, 5, 11, 19, 59)) == "2026-12-05T11:19:59.000000Z"


def test_account_timestamps_are_rfc3339(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    client.post(
        "/v1/accounts/100001/recharges", json={"amount": "1.00"}, headers=bearer(seed.token())
    )
    body = client.get("/v1/accounts/100001", headers=bearer(seed.token("viewer"))).get_json()
    stamps = [row["created_at"] for row in body["ledger"]]
    stamps += [row["created_at"] for row in body["reservations"]]
    assert stamps and all(RFC3339_UTC.match(s) for s in stamps), stamps
    assert "GMT" not in str(body)


def test_unanswered_cdr_costs_zero_string_in_every_route(client, seed) -> None:  # type: ignore[no-untyped-def]
    path = CDR / "urlencoded" / "noanswer_timeout_loopback_b_inbound.http"
    record = record_of(path)
    seed.account("100001", balance="10.00")
    authorize(client, record)
    posted = post_capture(client, path).get_json()
    assert posted["billing_status"] == "unanswered"
    assert posted["cost"] == "0.0000"

    viewer = bearer(seed.token("viewer"))
    listed = client.get("/v1/cdrs", headers=viewer).get_json()["cdrs"]
    one = client.get(f"/v1/cdrs/{record.uuid}", headers=viewer).get_json()["legs"]
    assert [c["cost"] for c in listed] == ["0.0000"]
    assert [c["cost"] for c in one] == ["0.0000"]
    assert RFC3339_UTC.match(listed[0]["start_at"]) and listed[0]["answer_at"] is None
    assert RFC3339_UTC.match(listed[0]["received_at"])

    export = client.get("/v1/cdrs/export.csv", headers=viewer).get_data(as_text=True)
    (row,) = list(csv.DictReader(io.StringIO(export)))
    assert row["cost"] == "0.0000"
    assert RFC3339_UTC.match(row["start_at"]), row["start_at"]


def test_session_expiry_is_rfc3339(app, clean, db_url) -> None:  # type: ignore[no-untyped-def]
    from test_access_session import login, make_user, site

    dashboard = site.__wrapped__(app, clean, db_url)  # type: ignore[attr-defined]
    make_user(db_url, "olga", "operator")
    client = dashboard.test_client()
    body = login(client, "olga").get_json()
    assert RFC3339_UTC.match(body["expires_at"]), body
    me = client.get("/v1/session", base_url="https://localhost").get_json()
    assert RFC3339_UTC.match(me["expires_at"]), me


def test_openapi_declares_timestamps_as_date_time(client, seed) -> None:  # type: ignore[no-untyped-def]
    doc = client.get("/v1/openapi.json", headers=bearer(seed.token("viewer"))).get_json()
    assert doc["components"]["schemas"]["Timestamp"]["format"] == "date-time"
    params = {p["name"]: p for p in doc["paths"]["/v1/cdrs"]["get"]["parameters"]}
    assert params["from"]["schema"]["format"] == "date-time"
    cdr = doc["components"]["schemas"]["Cdr"]["properties"]
    assert cdr["start_at"]["format"] == "date-time"
    assert cdr["cost"]["pattern"]
