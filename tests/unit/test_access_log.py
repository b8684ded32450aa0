"""What the access log keeps of a request line: everything but the secrets in it."""

from __future__ import annotations

import pytest

from sidecar.access_log import redact_target


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/v1/cdrs?caller=100&limit=5", "/v1/cdrs?caller=100&limit=5"),
        ("/v1/cdrs?token=apo_abcDEF123-_x&limit=5", "/v1/cdrs?token=[redacted]&limit=5"),
        ("/v1/x?access_token=abc&API_KEY=k", "/v1/x?access_token=[redacted]&API_KEY=[redacted]"),
        ("/v1/x?password=hunter2&session=s", "/v1/x?password=[redacted]&session=[redacted]"),
        ("/v1/x?note=apo_0123456789", "/v1/x?note=[redacted]"),
        ("/v1/x?q=apo%5Fabcdef", "/v1/x?q=[redacted]"),
        ("/v1/accounts/apo_0123456789abcdef", "/v1/accounts/[redacted]"),
        ("https://host/dashboard/?csrf_token=t", "https://host/dashboard/?csrf_token=[redacted]"),
        ("/freeswitch/cdr?uuid=a_5e1f2c1e-0000", "/freeswitch/cdr?uuid=a_5e1f2c1e-0000"),
        ("-", "-"),
    ],
)
def test_secrets_in_a_url_are_redacted(target: str, logged: str) -> None:
    assert redact_target(target) == logged
