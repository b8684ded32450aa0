"""The FreeSWITCH allowlist under a real gunicorn sidecar, where the peer address is real."""

from __future__ import annotations

import pytest
import requests
from conftest import FS_AUTH, call_body, start_sidecar

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("allow", "expected"), [("10.0.0.0/8", 403), ("127.0.0.0/8", 200)])
def test_allowlist_sees_the_tcp_peer(db_url, redis_url, seed, allow, expected) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    sidecar = start_sidecar(db_url, redis_url, workers=1, APOLO_FS_ALLOW=allow)
    try:
        resp = requests.post(
            f"{sidecar.url}/v1/authorize",
            json=call_body(f"u-live-{expected}", "100001", "5119999"),
            auth=FS_AUTH,
            # a forged header changes nothing: no trusted proxy is configured
            headers={"X-Forwarded-For": "10.9.9.9"},
            timeout=10,
        )
        assert resp.status_code == expected, resp.text
        if expected == 403:
            assert resp.json()["error"]["code"] == "address_not_allowed"
        else:
            assert resp.json()["authorized"] is True
    finally:
        sidecar.stop()
