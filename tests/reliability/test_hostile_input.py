"""Hostile input over the wire to a real gunicorn sidecar: each answered 4xx, nothing written.

The API tier checks the parsers through the Flask client; these go through gunicorn (body
limits, encodings, connection handling) and compare a snapshot of every table afterwards.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests
from conftest import FS_AUTH, Seed, SidecarProcess, call_body, start_sidecar
from unit.cucm.cucm_rows import SIETE_CDR, SIETE_CDR_NAME

from reliability.conftest import PrivateServers
from reliability.hostile import answered_safely, refused, snapshot
from reliability.tally import TALLY
from sidecar.simulator.cdr_template import build_cdr

NUMBER = "500001"
CALLEE = "51987654321"


@pytest.fixture(scope="module")
def sidecar(servers: PrivateServers) -> Iterator[SidecarProcess]:
    process = start_sidecar(
        servers.db_url, servers.redis_url, workers=1,
        APOLO_RESERVATION_SECONDS="60", APOLO_FAC_KEY="reliability-fac-key-0123456789",
        APOLO_BULK_MAX_BYTES="20000", APOLO_CUCM_MAX_FILE_BYTES="300000",
        APOLO_RATE_IMPORT_MAX_BYTES="20000",
    )  # fmt: skip
    yield process
    process.stop()


@pytest.fixture
def ctx(sidecar: SidecarProcess, servers: PrivateServers, rel_seed: Seed) -> dict[str, Any]:
    rel_seed.account(NUMBER, balance="10.00", rates=[("51", "0.60")])
    call = str(uuidlib.uuid4())
    answer = requests.post(
        f"{sidecar.url}/v1/authorize", json=call_body(call, NUMBER, CALLEE),
        auth=FS_AUTH, timeout=10,
    ).json()  # fmt: skip
    assert answer["authorized"] is True
    answered = time.time_ns() // 1000 - 30_000_000
    return {
        "url": sidecar.url,
        "db": servers.db_url,
        "uuid": call,
        "cdr": build_cdr(call, NUMBER, CALLEE, answered, 20_000_000).decode(),
        "admin": {"Authorization": f"Bearer {rel_seed.token('admin')}"},
        "switch": {"Authorization": f"Bearer {rel_seed.token('switch')}"},
    }


def _sub(doc: str, pattern: str, replacement: str) -> str:
    new, n = re.subn(pattern, replacement, doc, count=1)
    assert n, pattern
    return new


XXE = '<?xml version="1.0"?>\n<!DOCTYPE cdr [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE cdr [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>\n"
)


def _body_of(doc: str) -> str:
    return doc.split("?>", 1)[1] if doc.startswith("<?xml") else doc


CDR_CASES: dict[str, Callable[[str], bytes]] = {
    "xxe": lambda d: (
        XXE + _sub(_body_of(d), r"<caller_id_name>[^<]*<", "<caller_id_name>&x;<")
    ).encode(),
    "billion_laughs": lambda d: (
        LAUGHS + _sub(_body_of(d), r"<caller_id_name>[^<]*<", "<caller_id_name>&j;<")
    ).encode(),
    "internal_dtd": lambda d: ("<!DOCTYPE cdr [<!ELEMENT cdr ANY>]>\n" + _body_of(d)).encode(),
    "external_dtd": lambda d: (
        '<!DOCTYPE cdr SYSTEM "http://127.0.0.1:9/x.dtd">\n' + _body_of(d)
    ).encode(),
    "truncated": lambda d: d.encode()[: len(d) // 2],
    "non_utf8": lambda d: _sub(
        d, r"<caller_id_name>[^<]*<", "<caller_id_name>\udcff\udcfe<"
    ).encode("utf-8", "surrogateescape"),
    "negative_billsec": lambda d: _sub(
        _sub(d, r"<billusec>\d+<", "<billusec>-20000000<"), r"<billsec>\d+<", "<billsec>-20<"
    ).encode(),
    "end_before_start": lambda d: _sub(
        d, r"<end_uepoch>\d+<", "<end_uepoch>1000000000000000<"
    ).encode(),
    "huge_numbers": lambda d: _sub(d, r"<billusec>\d+<", "<billusec>" + "9" * 40 + "<").encode(),
    "empty": lambda d: b"",
}


@pytest.mark.parametrize("case", sorted(CDR_CASES))
def test_hostile_cdr_is_refused_and_changes_nothing(ctx: dict[str, Any], case: str) -> None:
    before = snapshot(ctx["db"])
    resp = requests.post(
        f"{ctx['url']}/freeswitch/cdr", params={"uuid": f"a_{ctx['uuid']}"},
        data=CDR_CASES[case](ctx["cdr"]), headers={"Content-Type": "text/xml"},
        auth=FS_AUTH, timeout=30,
    )  # fmt: skip
    refused(resp.status_code, before, ctx["db"], (case, resp.text[:300]))
    assert "error" in resp.json()
    # the call is still open and its genuine CDR is then charged once
    good = requests.post(
        f"{ctx['url']}/freeswitch/cdr", params={"uuid": f"a_{ctx['uuid']}"},
        data=ctx["cdr"].encode(), headers={"Content-Type": "text/xml"}, auth=FS_AUTH, timeout=30,
    )  # fmt: skip
    assert good.status_code == 200 and good.json()["cost"] == "0.6000"


def test_a_50_mb_cdr_body_is_refused_without_reading_it_all(ctx: dict[str, Any]) -> None:
    before = snapshot(ctx["db"])
    head = ctx["cdr"].encode()[:200]
    body = head + b" " * (50 * 1024 * 1024)
    try:
        resp = requests.post(
            f"{ctx['url']}/freeswitch/cdr", params={"uuid": f"a_{ctx['uuid']}"}, data=body,
            headers={"Content-Type": "text/xml"}, auth=FS_AUTH, timeout=60,
        )  # fmt: skip
        assert resp.status_code == 413, (resp.status_code, resp.text[:200])
        status = resp.status_code
    except requests.ConnectionError:
        status = 413  # the sidecar answered and closed before the client finished sending
    refused(status, before, ctx["db"])
    health = requests.get(f"{ctx['url']}/healthz", timeout=5)
    assert health.status_code == 200  # the worker is still serving


AUTHORIZE_CASES: dict[str, tuple[bytes, str]] = {
    "truncated_json": (
        b'{"uuid": "5e1f2c1e-0000-4000-8000-00000000abcd", "caller": "50',
        "application/json",
    ),
    "non_utf8_json": (
        b'{"uuid": "\xff\xfe", "caller": "500001", "callee": "519"}',
        "application/json",
    ),
    "huge_callee": (
        b'{"uuid": "5e1f2c1e-0000-4000-8000-00000000abce", "caller": "500001", "callee": "'
        + b"5" * 100_000
        + b'"}',
        "application/json",
    ),
    "number_uuid": (b'{"uuid": 1e999, "caller": "500001", "callee": "519"}', "application/json"),
    "array": (b"[1, 2, 3]", "application/json"),
    "xml_bomb": (LAUGHS.encode() + b"<x>&j;</x>", "text/xml"),
}


@pytest.mark.parametrize("case", sorted(AUTHORIZE_CASES))
def test_hostile_authorize_is_refused_and_reserves_nothing(ctx: dict[str, Any], case: str) -> None:
    before = snapshot(ctx["db"])
    body, content_type = AUTHORIZE_CASES[case]
    resp = requests.post(f"{ctx['url']}/v1/authorize", data=body, auth=FS_AUTH, timeout=30,
                         headers={"Content-Type": content_type})  # fmt: skip
    if case in ("huge_callee", "non_utf8_json"):  # the hook may send these: a denial, never
        # a 4xx, which a hook that fails open would take as "let the call through"
        answered_safely(resp.status_code, before, ctx["db"], resp.text[:300])
        assert resp.status_code == 200 and resp.json()["authorized"] is False
        return
    refused(resp.status_code, before, ctx["db"], (case, resp.text[:300]))


SQL_FILTERS = [
    "account=500001' OR '1'='1",
    "caller=' OR 1=1 --",
    "callee=51%' OR '1'='1",
    "destination=51;DROP TABLE cdrs",
    "hangup_cause=NORMAL_CLEARING' UNION SELECT token_hash FROM api_tokens --",
    "from=2020-01-01'::date OR true --",
    "min_cost=0 OR 1=1",
    "cursor=1 OR 1=1",
    "limit=1;DROP TABLE cdrs",
    "source=freeswitch' OR '1'='1",
]


@pytest.mark.parametrize("qs", SQL_FILTERS)
def test_sql_looking_filters_match_nothing_or_are_400(ctx: dict[str, Any], qs: str) -> None:
    requests.post(
        f"{ctx['url']}/freeswitch/cdr",
        params={"uuid": f"a_{ctx['uuid']}"},
        data=ctx["cdr"].encode(),
        headers={"Content-Type": "text/xml"},
        auth=FS_AUTH,
        timeout=30,
    ).raise_for_status()  # one CDR that a successful injection would return
    name, _, value = qs.partition("=")
    resp = requests.get(
        f"{ctx['url']}/v1/cdrs", params={name: value}, headers=ctx["admin"], timeout=10
    )
    assert resp.status_code in (200, 400, 404), (resp.status_code, resp.text[:300])
    if resp.status_code == 200:
        assert resp.json()["cdrs"] == []
    with psycopg.connect(ctx["db"]) as c:
        assert c.execute("SELECT count(*) FROM cdrs").fetchone() == (1,)
    TALLY.hostile(resp.status_code, changed=False, safe=True)


FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1+1)", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def test_rate_csv_formula_injection_is_escaped_on_export(ctx: dict[str, Any]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["prefix", "name", "rate_per_minute"])
    for i, formula in enumerate(FORMULAS):
        writer.writerow([f"5{i}", formula, "0.5"])
    resp = requests.post(
        f"{ctx['url']}/v1/rate-plans/hostile/import",
        data=out.getvalue(),
        headers={**ctx["admin"], "Content-Type": "text/csv"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text[:300]
    export = requests.get(
        f"{ctx['url']}/v1/rate-plans/hostile/export.csv", headers=ctx["admin"], timeout=10
    )
    names = {r["prefix"]: r["name"] for r in csv.DictReader(io.StringIO(export.text))}
    for i, formula in enumerate(FORMULAS):
        cell = names[f"5{i}"]
        assert cell == "'" + formula, (formula, cell)  # the original, made inert
    for _ in FORMULAS:
        TALLY.hostile(resp.status_code, changed=False, safe=True)


def test_oversized_uploads_are_413_and_write_nothing(ctx: dict[str, Any]) -> None:
    before = snapshot(ctx["db"])

    def bulk(rows: int) -> requests.Response:  # APOLO_BULK_MAX_BYTES is 20000 here
        return requests.post(
            f"{ctx['url']}/v1/accounts/bulk-recharges",
            data="account,amount\n" + "500001,1.00\n" * rows,
            headers={**ctx["admin"], "Content-Type": "text/csv"},
            timeout=30,
        )

    # a little over the limit is read (to the limit) and refused as a bad file ...
    slightly = bulk(2000)
    assert slightly.status_code == 400 and "larger than" in slightly.json()["error"]["message"]
    big = bulk(20000)  # ... far over it is refused from its Content-Length
    rates = "prefix,rate_per_minute\n" + "".join(f"{51000 + i},0.5\n" for i in range(3000))
    rate_import = requests.post(
        f"{ctx['url']}/v1/rate-plans/big/import",
        data=rates,
        headers={**ctx["admin"], "Content-Type": "text/csv"},
        timeout=30,
    )
    cucm = requests.post(
        f"{ctx['url']}/cucm/cdr", data=SIETE_CDR.read_bytes() * 400,
        headers={**ctx["switch"], "X-Apolo-File-Name": SIETE_CDR_NAME}, timeout=30,
    )  # fmt: skip
    assert (big.status_code, rate_import.status_code, cucm.status_code) == (413, 413, 413)
    for answer in (slightly, big, rate_import, cucm):
        refused(answer.status_code, before, ctx["db"])


CUCM_NAMES = [
    "../" + SIETE_CDR_NAME,
    "/etc/" + SIETE_CDR_NAME,
    "..\\..\\" + SIETE_CDR_NAME,
    "archive/" + SIETE_CDR_NAME,
    SIETE_CDR_NAME + "/..",
    "%2e%2e%2f" + SIETE_CDR_NAME,
    SIETE_CDR_NAME + "\x00.txt",
    SIETE_CDR_NAME + "\n",
    "c" * 5000,
    "",
]


@pytest.mark.parametrize("name", CUCM_NAMES, ids=range(len(CUCM_NAMES)))
def test_cucm_file_name_tricks_are_400(ctx: dict[str, Any], name: str) -> None:
    before = snapshot(ctx["db"])
    try:
        resp = requests.post(
            f"{ctx['url']}/cucm/cdr", data=SIETE_CDR.read_bytes(), params={"name": name},
            headers=ctx["switch"], timeout=30,
        )  # fmt: skip
    except requests.RequestException as exc:  # pragma: no cover - a refusal must be an answer
        pytest.fail(f"no answer for {name!r}: {exc}")
    refused(resp.status_code, before, ctx["db"], (name, resp.text[:300]))


def test_the_genuine_cucm_file_is_accepted(ctx: dict[str, Any]) -> None:
    """The name tricks above are refused for their names, not because the file is bad."""
    resp = requests.post(
        f"{ctx['url']}/cucm/cdr", data=SIETE_CDR.read_bytes(), params={"name": SIETE_CDR_NAME},
        headers=ctx["switch"], timeout=30,
    )  # fmt: skip
    assert resp.status_code in (200, 201), resp.text[:300]
