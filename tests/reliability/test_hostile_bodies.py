"""Request bodies over the limit, cut short or badly framed, through a real gunicorn.

Every route answers the same whatever the framing: a body over its route's limit is 413 with
Content-Length and with ``Transfer-Encoding: chunked`` alike, and is never used in part; a
body that ends before its declared length, or whose chunk framing breaks, is 400; nothing
is written. The bodies here are built so that the first ``limit`` bytes alone would be a
complete, valid request: a server that silently cuts at the limit would act on them.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import FS_AUTH, Seed, SidecarProcess, start_sidecar
from fixtures_path import FS_FIXTURES, read_http_capture
from unit.cucm.cucm_rows import SIETE_CDR, SIETE_CDR_NAME

from reliability.conftest import PrivateServers
from reliability.hostile import (
    HOSTILE_ENV,
    Answer,
    login_session,
    only_user,
    refused,
    send,
    snapshot,
)
from sidecar.simulator.cdr_template import build_cdr

LIMIT = 200_000  # APOLO_MAX_DOCUMENT_BYTES: every route without a limit of its own
BULK_LIMIT = LIMIT  # APOLO_BULK_MAX_BYTES (a multipart upload may add 64 KiB of framing)
BULK_ROUTE_LIMIT = BULK_LIMIT + 65536
CUCM_FILE = SIETE_CDR.read_bytes()
CUCM_LIMIT = len(CUCM_FILE)  # the real file is exactly at the limit: one more row is over
NUMBER = "500001"
PASSWORD = "hostile-bodies-password"
DIALPLAN = read_http_capture(FS_FIXTURES / "xml_curl" / "dialplan_request_loopback.http")


@pytest.fixture(scope="module")
def sidecar(servers: PrivateServers) -> Iterator[SidecarProcess]:
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1,
        APOLO_MAX_DOCUMENT_BYTES=str(LIMIT), APOLO_BULK_MAX_BYTES=str(BULK_LIMIT),
        APOLO_CUCM_MAX_FILE_BYTES=str(CUCM_LIMIT), APOLO_RATE_IMPORT_MAX_BYTES=str(LIMIT),
        **HOSTILE_ENV,
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def ctx(sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed) -> dict[str, Any]:
    rel_seed.account(NUMBER, balance="10.00", rates=[("51", "0.60")])
    rel_seed.account("500002", balance="10.00", rates=[("51", "0.60")])
    rel_seed.account("100001", balance="10.00", rates=[("51", "0.60")])  # the capture's caller
    only_user(servers.db_url, "olga", "operator", PASSWORD)
    session, csrf = login_session(sidecar.url, "olga", PASSWORD)
    return {
        "url": sidecar.url,
        "db": servers.db_url,
        "admin": {"Authorization": f"Bearer {rel_seed.token('admin')}"},
        "switch": {"Authorization": f"Bearer {rel_seed.token('switch')}"},
        "fs": {"Authorization": "Basic " + _basic()},
        "session": session,
        "csrf": csrf,
    }


def _basic() -> str:
    import base64

    return base64.b64encode(f"{FS_AUTH[0]}:{FS_AUTH[1]}".encode()).decode()


def _padded(valid: bytes, limit: int, filler: bytes, tail: bytes) -> bytes:
    """``valid`` padded with ``filler`` to exactly ``limit`` bytes, then ``tail``: cut at the
    limit it is still a complete, valid request."""
    assert len(valid) <= limit
    return valid + filler * (limit - len(valid)) + tail


def _cdr() -> bytes:
    call = str(uuidlib.uuid4())
    answered = time.time_ns() // 1000 - 30_000_000
    return build_cdr(call, NUMBER, "51987654321", answered, 20_000_000)


def _cases(ctx: dict[str, Any]) -> dict[str, tuple[str, dict[str, str], bytes]]:
    """name -> (target, headers, body over the route's limit whose head is a whole request)."""
    json_ct = {"Content-Type": "application/json"}
    recharge = _padded(b'{"amount": "1.00"}', LIMIT, b" ", b'  ,"amount": "900.00"}')
    bulk_head = b"account,amount\n500001,1.00\n"
    bulk = _padded(bulk_head, LIMIT, b"\n", b"500002,1.00\n" + b"\n" * (BULK_ROUTE_LIMIT - LIMIT))
    cucm_row = CUCM_FILE.rstrip(b"\r\n").rsplit(b"\n", 1)[1]
    form = DIALPLAN.body + b"&pad="
    dashboard = (f"csrf_token={ctx['csrf']}&amount=1.00&idempotency_key={uuidlib.uuid4()}"
                 "&note=").encode()  # fmt: skip
    rates = _padded(b"prefix,rate_per_minute\n519,0.50\n", LIMIT, b"\n", b"518,0.50\n")
    return {
        "recharge": (f"/v1/accounts/{NUMBER}/recharges", {**ctx["admin"], **json_ct}, recharge),
        "authorize": (
            "/v1/authorize",
            {**ctx["fs"], **json_ct},
            _padded(
                json.dumps(
                    {"uuid": str(uuidlib.uuid4()), "caller": NUMBER, "callee": "51987654321"}
                ).encode(),
                LIMIT,
                b" ",
                b"!",
            ),
        ),
        "login": (
            "/v1/session",
            json_ct,
            _padded(
                b'{"username": "olga", "password": "' + PASSWORD.encode() + b'"}', LIMIT, b" ", b"!"
            ),
        ),
        "cdr": (
            "/freeswitch/cdr",
            {**ctx["fs"], "Content-Type": "text/xml"},
            _padded(_cdr(), LIMIT, b" ", b" " * (2 * LIMIT + 16) + b"<!-- -->"),
        ),
        "bulk": ("/v1/accounts/bulk-recharges", {**ctx["admin"], "Content-Type": "text/csv"}, bulk),
        "cucm": (
            "/cucm/cdr",
            {**ctx["switch"], "X-Apolo-File-Name": SIETE_CDR_NAME},
            CUCM_FILE + cucm_row + b"\r\n",
        ),
        "rate_import": (
            "/v1/rate-plans/big/import",
            {**ctx["admin"], "Content-Type": "text/csv"},
            rates,
        ),
        "dialplan": (
            "/freeswitch/dialplan",
            {**ctx["fs"], "Content-Type": "application/x-www-form-urlencoded"},
            _padded(form, LIMIT, b"x", b"&x=1"),
        ),
        "dashboard_recharge": (
            f"/dashboard/accounts/{NUMBER}/recharge",
            {**ctx["session"], "Content-Type": "application/x-www-form-urlencoded"},
            _padded(dashboard, LIMIT, b"x", b"&x=1"),
        ),
    }


CASES = ("recharge", "authorize", "login", "cdr", "bulk", "cucm", "rate_import", "dialplan",
         "dashboard_recharge")  # fmt: skip


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("case", CASES)
def test_a_body_over_the_limit_is_413_whatever_the_framing(
    ctx: dict[str, Any], case: str, framing: str
) -> None:
    target, headers, body = _cases(ctx)[case]
    before = snapshot(ctx["db"])
    answer = send(ctx["url"], "POST", target, body, headers, chunked=framing == "chunked")
    refused(answer.status, before, ctx["db"], (case, framing, answer.body[:200]))
    assert answer.status == 413, (case, framing, answer.status, answer.body[:300])
    if not case.startswith("dashboard"):  # a dashboard page answers with a page
        assert answer.json()["error"]["code"] == "body_too_large"


def test_the_heads_of_those_bodies_are_valid_requests(ctx: dict[str, Any]) -> None:
    """What the 413s above protect: cut at the limit, each body is a request the route takes
    (so a server that cut silently would act on it)."""
    cases = _cases(ctx)
    for case, limit in (("recharge", LIMIT), ("bulk", LIMIT), ("cucm", CUCM_LIMIT),
                        ("dialplan", LIMIT), ("cdr", LIMIT)):  # fmt: skip
        target, headers, body = cases[case]
        answer = send(ctx["url"], "POST", target, body[:limit], headers)
        assert 200 <= answer.status < 300, (case, answer.status, answer.body[:300])


def test_a_body_cut_short_of_its_content_length_is_400(ctx: dict[str, Any]) -> None:
    """The client declares more than it sends, then stops: a complete-looking JSON object
    must not be taken for the whole body."""
    body = b'{"amount": "1.00"}'
    before = snapshot(ctx["db"])
    answer = send(
        ctx["url"], "POST", f"/v1/accounts/{NUMBER}/recharges", body,
        {**ctx["admin"], "Content-Type": "application/json"},
        declared_length=len(body) + 100, end_body=False,
    )  # fmt: skip
    refused(answer.status, before, ctx["db"], answer.body[:200])
    assert answer.status == 400, answer.body[:300]


def test_a_chunked_body_without_its_last_chunk_is_400(ctx: dict[str, Any]) -> None:
    before = snapshot(ctx["db"])
    answer = send(
        ctx["url"], "POST", f"/v1/accounts/{NUMBER}/recharges", b'{"amount": "1.00"}',
        {**ctx["admin"], "Content-Type": "application/json"}, chunked=True, end_body=False,
    )  # fmt: skip
    refused(answer.status, before, ctx["db"], answer.body[:200])


@pytest.mark.parametrize(
    "tail", [b"zz\r\nxx\r\n0\r\n\r\n", b"5\r\nabcdefgh\r\n0\r\n\r\n", b"5;a=\x01\r\nabcde\r\n"]
)
def test_broken_chunk_framing_is_4xx(ctx: dict[str, Any], tail: bytes) -> None:
    before = snapshot(ctx["db"])
    answer = send(
        ctx["url"], "POST", f"/v1/accounts/{NUMBER}/recharges", b'{"amount": "1.00"}',
        {**ctx["admin"], "Content-Type": "application/json"}, chunked=True, end_body=False,
        raw_tail=tail,
    )  # fmt: skip
    if answer.status == 0:  # gunicorn itself may drop a connection whose framing broke
        answer = Answer(400, {}, b"")
    refused(answer.status, before, ctx["db"], answer.body[:200])
    health = requests.get(f"{ctx['url']}/healthz", timeout=5)
    assert health.status_code == 200
