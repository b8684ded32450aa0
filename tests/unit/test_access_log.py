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


def test_the_access_log_line_has_gunicorn_atoms_but_no_header_environ_or_secret() -> None:
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.glogging import SafeAtoms

    from sidecar.access_log import RedactingLogger

    logger = RedactingLogger(Config())
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": "/v1/cdrs?token=apo_secret1&limit=5",
        "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": "/v1/cdrs", "QUERY_STRING":
        "token=apo_secret1&limit=5", "REMOTE_ADDR": "10.0.0.9", "HTTP_REFERER":
        "https://h/x?password=p", "HTTP_USER_AGENT": "curl", "HTTP_X_SECRET": "s3cret",
    }  # fmt: skip
    resp = SimpleNamespace(status="200 OK", sent=12, headers=[("Set-Cookie", "apolo_session=z")])
    req = SimpleNamespace(headers=[("X-SECRET", "s3cret"), ("AUTHORIZATION", "Bearer apo_t")])
    atoms = logger.atoms(resp, req, environ, timedelta(seconds=1, microseconds=2345))
    line = "%(h)s %(r)s %(s)s %(b)s %(f)s %(a)s %(L)s %(q)s %(U)s %({x-secret}i)s %({set-cookie}o)s"
    assert line % SafeAtoms(atoms) == (
        "10.0.0.9 GET /v1/cdrs?token=[redacted]&limit=5 HTTP/1.1 200 12 "
        "https://h/x?password=[redacted] curl 1.002345 token=[redacted]&limit=5 /v1/cdrs - -"
    )
    assert (atoms["D"], atoms["M"], atoms["m"], atoms["H"]) == (1002345, 1002, "GET", "HTTP/1.1")
    plain = {
        **environ,
        "RAW_URI": "/v1/authorize",
        "QUERY_STRING": "",
        "PATH_INFO": "/v1/authorize",
    }
    del plain["HTTP_REFERER"]
    atoms = logger.atoms(resp, req, plain, timedelta(microseconds=7))
    assert (atoms["r"], atoms["q"], atoms["f"], atoms["L"]) == (
        "GET /v1/authorize HTTP/1.1",
        "",
        "-",
        "0.000007",
    )
