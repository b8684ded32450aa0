"""Dashboard alerts page: a low-balance crossing made by a real charged CDR shows up."""

from __future__ import annotations

import psycopg
from conftest import FS_AUTH, call_body
from test_web_support import clear_users, login, make_user, plain_http, register_dashboard

from sidecar.simulator.cdr_template import build_cdr


def test_a_charge_crossing_the_threshold_appears_on_the_alerts_page(app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    register_dashboard(app)
    plain_http(app)
    clear_users(db_url)
    make_user(db_url, "noc", "viewer")
    seed.account("100001", balance="1.00", rates=[("51", "0.60")])
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE accounts SET low_balance_threshold = 0.50 WHERE number = '100001'")
    client = app.test_client()
    assert login(client, "noc").status_code == 303
    empty = client.get("/dashboard/alerts").get_data(as_text=True)
    assert 'id="alerts-empty"' in empty

    uuid = "5f0c1d2e-0000-4000-8000-000000000001"
    auth = client.post(
        "/v1/authorize",
        json=call_body(uuid, "100001"),
        auth=FS_AUTH,
    )
    assert auth.get_json()["authorized"] is True
    cdr = build_cdr(uuid, "100001", "51987654321", 1_795_000_000_000_000, 30_000_000)
    resp = client.post(f"/freeswitch/cdr?uuid=a_{uuid}", data=cdr, content_type="text/xml",
                       auth=FS_AUTH)  # fmt: skip
    assert resp.get_json()["cost"] == "0.6000"  # 1.00 -> 0.40 crosses 0.50

    page = client.get("/dashboard/alerts").get_data(as_text=True)
    assert 'id="alerts"' in page and "100001" in page
    assert "0.40" in page and "0.50" in page
