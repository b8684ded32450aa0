"""GET /metrics: open, and counting what the sidecar decided."""

from __future__ import annotations

from conftest import FS_AUTH, call_body, free_port
from metrics_support import counter

from sidecar import create_app


def _scrape(client) -> str:  # type: ignore[no-untyped-def]
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    return resp.get_data(as_text=True)


def test_counts_authorizations_and_cdrs(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="0.60")
    before = _scrape(client)
    for i in range(3):
        body = call_body(f"m-{i}", "100001")
        client.post("/v1/authorize", json=body, auth=FS_AUTH)
    client.post("/freeswitch/cdr?uuid=a_x", data=b"<cdr>", content_type="text/xml", auth=FS_AUTH)
    after = _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return counter(after, name, **labels) - counter(before, name, **labels)

    assert delta("apolo_authorizations", result="authorized", reason="authorized") == 1
    assert delta("apolo_authorizations", result="denied", reason="insufficient_balance") == 2
    assert delta("apolo_cdrs", status="invalid") == 1


def test_database_down_is_counted(db_url, redis_url) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        {
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/apolo",
            "redis_url": redis_url,
            "fs_password": "x",
            "db_timeout": 0.5,
        }
    )
    client = app.test_client()
    before = counter(_scrape(client), "apolo_errors", code="database_unavailable")
    body = call_body("m-down", "100001")
    resp = client.post("/v1/authorize", json=body, auth=("freeswitch", "x"))
    assert resp.status_code == 503
    after = counter(_scrape(client), "apolo_errors", code="database_unavailable")
    assert after - before == 1
    app.extensions["apolo_rates"].stop()
