"""POST /cucm/cdr through the Flask test client, against the real test database."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import Seed
from psycopg.rows import dict_row
from unit.cucm.cucm_rows import (
    DAMHAU_CDR,
    SIETE_CDR,
    SIETE_CDR_NAME,
    SIETE_CMR,
    SIETE_CMR_NAME,
    answered_row,
    damhau,
    fac_chain,
    read_table,
    siete,
)

from sidecar.api import cucm as cucm_api
from sidecar.api import fac as fac_api
from sidecar.rating import call_cost
from sidecar.repo import rates as rates_repo

FAC_KEY = "test-fac-key-0123456789abcdef"
GATEWAY = "S0/SU0/DS1-0@gw-lima"
RPM = "0.600000"
SINCE_2000 = datetime(2000, 1, 1, tzinfo=UTC)  # the damhau calls are from 2015


@pytest.fixture
def cucm_client(app, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("APOLO_FAC_KEY", FAC_KEY)
    monkeypatch.delenv("APOLO_CUCM_BILLABLE_DEVICES", raising=False)
    for module in (cucm_api, fac_api):
        if module.bp.name not in app.blueprints:
            app.register_blueprint(module.bp)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE cucm_files CASCADE")
    return app.test_client()


def _db(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def _post(client, token: str, name: str, data: bytes, via: str = "header"):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    if via == "header":
        return client.post("/cucm/cdr", data=data, headers={**headers, "X-Apolo-File-Name": name})
    return client.post(f"/cucm/cdr?name={name}", data=data, headers=headers)


def _counts(db_url: str) -> dict[str, int]:
    row = _db(
        db_url,
        "SELECT (SELECT count(*) FROM cdrs) AS cdrs, (SELECT count(*) FROM ledger"
        " WHERE kind = 'call_charge') AS charges, (SELECT count(*) FROM cucm_files) AS files,"
        " (SELECT count(*) FROM cucm_cdrs) AS cucm_cdrs, (SELECT count(*) FROM cucm_cmrs)"
        " AS cmrs, (SELECT count(*) FROM audit_log) AS audits",
    )[0]
    return {k: int(v) for k, v in row.items()}


def _rate(seed: Seed, plan: str) -> Any:
    with psycopg.connect(seed.url, row_factory=dict_row) as conn:
        plan_id = rates_repo.plan_id_by_name(conn, plan)
        assert plan_id is not None
        rows = conn.execute(
            "SELECT * FROM rates WHERE plan_id = %s ORDER BY length(prefix) DESC", (plan_id,)
        ).fetchall()
    from sidecar.rating import Rate

    r = rows[0]
    return Rate(
        r["id"], r["prefix"], r["name"], r["rate_per_minute"], r["connection_fee"],
        r["initial_increment"], r["increment"], r["effective_start"], r["effective_end"],
    )  # fmt: skip


def _by_uuid(db_url: str, pkid: str) -> dict[str, Any]:
    rows = _db(db_url, "SELECT * FROM cdrs WHERE call_uuid = %s", (f"cucm:{pkid}",))
    assert len(rows) == 1
    return rows[0]


def test_answered_call_is_charged_and_unanswered_is_not(
    cucm_client, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APOLO_CUCM_BILLABLE_DEVICES", "^SEP")
    table = siete()
    talk = answered_row(table)
    caller = table.value(talk, "callingPartyNumber")
    plan = seed.plan([(table.value(talk, "finalCalledPartyNumber")[:3], RPM)])
    seed.account(caller, balance="5.00", plan=plan)
    token = seed.token("switch")
    never = table.fresh(talk, dateTimeConnect=0, dateTimeDisconnect=0, duration=0)
    data = table.to_bytes([*table.rows, never])

    resp = _post(cucm_client, token, SIETE_CDR_NAME, data)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["rows"] == body["new_rows"] == len(table.rows) + 1 and not body["duplicate"]

    expected = call_cost(_rate(seed, plan), int(table.value(talk, "duration")))
    charged = _by_uuid(db_url, table.value(talk, "pkid"))
    assert charged["billing_status"] == "charged" and charged["source"] == "cucm"
    assert charged["cost"] == expected and body["charged_total"] == str(expected)
    assert charged["billsec"] == int(table.value(talk, "duration"))
    assert charged["answer_at"].timestamp() == int(table.value(talk, "dateTimeConnect"))
    assert _by_uuid(db_url, table.value(never, "pkid"))["billing_status"] == "unanswered"
    for row in table.rows:
        if row is not talk:  # the two recording legs: no destDeviceName
            assert _by_uuid(db_url, table.value(row, "pkid"))["billing_status"] == "not_billed"
    assert Decimal(seed.balance(caller)["balance"]) == Decimal("5.00") - expected
    ledger = _db(db_url, "SELECT * FROM ledger WHERE kind = 'call_charge'")
    assert [(r["amount"], r["cdr_id"]) for r in ledger] == [(-expected, charged["id"])]
    full = _db(db_url, "SELECT row FROM cucm_cdrs WHERE pkid = %s", (table.value(talk, "pkid"),))
    assert len(full[0]["row"]) == 133 and full[0]["row"]["destCause_value"] == int(
        table.value(talk, "destCause_value")
    )


def test_phone_to_phone_calls_are_not_billed_by_default(
    cucm_client, seed: Seed, db_url: str
) -> None:
    table = siete()
    caller = table.value(answered_row(table), "callingPartyNumber")
    seed.account(caller, balance="5.00", rates=[("5", RPM)])
    resp = _post(
        cucm_client, seed.token("admin"), SIETE_CDR_NAME, SIETE_CDR.read_bytes(), via="query"
    )
    assert resp.status_code == 200
    assert resp.get_json()["statuses"] == {"not_billed": len(table.rows)}
    assert seed.balance(caller)["balance"] == "5.0000"
    assert _counts(db_url)["charges"] == 0


def test_older_layout_file_appears_in_the_cdr_search(cucm_client, seed: Seed, db_url: str) -> None:
    table = damhau()
    resp = _post(cucm_client, seed.token("switch"), DAMHAU_CDR.name, DAMHAU_CDR.read_bytes())
    assert resp.status_code == 200 and resp.get_json()["new_rows"] == len(table.rows)
    viewer = seed.token("viewer")
    for row in table.rows:
        found = cucm_client.get(
            f"/v1/cdrs?uuid=cucm:{table.value(row, 'pkid')}",
            headers={"Authorization": f"Bearer {viewer}"},
        ).get_json()["cdrs"]
        assert [(c["source"], c["leg"], c["caller"]) for c in found] == [
            ("cucm", "a", table.value(row, "callingPartyNumber"))
        ]
    stored = _db(db_url, "SELECT cluster, node, seq, kind FROM cucm_files")
    assert stored == [{"cluster": "StandAloneCluster", "node": 2, "seq": 254831, "kind": "cdr"}]


def test_cmrs_are_stored_against_their_call_and_never_billed(
    cucm_client, seed: Seed, db_url: str
) -> None:
    table = read_table(SIETE_CMR)
    before = _counts(db_url)
    resp = _post(cucm_client, seed.token("switch"), SIETE_CMR_NAME, SIETE_CMR.read_bytes())
    assert resp.status_code == 200 and resp.get_json()["kind"] == "cmr"
    after = _counts(db_url)
    assert after["cmrs"] == before["cmrs"] + len(table.rows)
    assert (after["cdrs"], after["charges"]) == (before["cdrs"], before["charges"])
    from sidecar.repo import cucm as cucm_repo

    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        call = (int(table.value(table.rows[0], "globalCallID_callManagerId")),
                int(table.value(table.rows[0], "globalCallID_callId")))  # fmt: skip
        linked = cucm_repo.cmrs_for_call(conn, *call)
    assert sorted(r["pkid"] for r in linked) == sorted(table.value(r, "pkid") for r in table.rows)


def test_a_file_delivered_twice_charges_once(
    cucm_client, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APOLO_CUCM_BILLABLE_DEVICES", "^SEP")
    table = siete()
    caller = table.value(answered_row(table), "callingPartyNumber")
    seed.account(caller, balance="5.00", rates=[("5", RPM)])
    token = seed.token("switch")
    data = SIETE_CDR.read_bytes()
    first = _post(cucm_client, token, SIETE_CDR_NAME, data)
    assert first.status_code == 200 and first.get_json()["statuses"]["charged"] == 1
    balance = seed.balance(caller)["balance"]
    counts = _counts(db_url)

    again = _post(cucm_client, token, SIETE_CDR_NAME, data)
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["file_id"] == first.get_json()["file_id"]
    # the same rows under another name (another billing server's copy): rows deduplicated
    renamed = _post(cucm_client, token, SIETE_CDR_NAME.replace("_25447", "_25448"), data)
    assert renamed.status_code == 200
    assert renamed.get_json()["duplicate_rows"] == len(table.rows)
    assert renamed.get_json()["new_rows"] == 0
    assert seed.balance(caller)["balance"] == balance
    after = _counts(db_url)
    assert {k: after[k] for k in ("cdrs", "charges", "cucm_cdrs")} == {
        k: counts[k] for k in ("cdrs", "charges", "cucm_cdrs")
    }


@pytest.mark.parametrize(
    ("mutate", "line", "words"),
    [
        (lambda t, rows: [rows[0], rows[1], rows[2][:-2]], 5, "values for"),
        (lambda t, rows: [rows[0], rows[1], t.changed(rows[2], duration="II")], 5, "duration"),
        (lambda t, rows: [rows[0], t.changed(rows[1], dateTimeConnect="1e9"), rows[2]], 4,
         "dateTimeConnect"),
    ],
)  # fmt: skip
def test_a_malformed_file_is_refused_with_its_line_and_nothing_is_written(
    cucm_client, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch, mutate, line, words
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("APOLO_CUCM_BILLABLE_DEVICES", "^SEP")
    table = siete()
    talk = answered_row(table)
    caller = table.value(talk, "callingPartyNumber")
    seed.account(caller, balance="5.00", rates=[("5", RPM)])
    # the billable talk record comes first: a partial write would charge it
    rows = [talk] + [r for r in table.rows if r is not talk]
    before = _counts(db_url)
    resp = _post(
        cucm_client, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes(mutate(table, rows))
    )
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_cucm_file"
    assert error["details"]["line"] == line and f"line {line}" in error["message"]
    assert words in error["message"]
    assert _counts(db_url) == before
    assert seed.balance(caller)["balance"] == "5.0000"


def test_bad_requests_and_credentials(cucm_client, seed: Seed, db_url: str) -> None:
    data = DAMHAU_CDR.read_bytes()
    assert cucm_client.post("/cucm/cdr", data=data).status_code == 401
    viewer = seed.token("viewer")
    assert _post(cucm_client, viewer, DAMHAU_CDR.name, data).status_code == 403
    switch = seed.token("switch")
    missing = cucm_client.post(
        "/cucm/cdr", data=data, headers={"Authorization": f"Bearer {switch}"}
    )
    assert missing.status_code == 400 and "file name" in missing.get_json()["error"]["message"]
    bad_name = _post(cucm_client, switch, "../cdr_x_1_202001010000_1", data)
    assert bad_name.status_code == 400
    cmr_as_cdr = _post(cucm_client, switch, SIETE_CDR_NAME, SIETE_CMR.read_bytes())
    assert cmr_as_cdr.status_code == 400
    assert "not a CDR file" in cmr_as_cdr.get_json()["error"]["message"]
    assert _counts(db_url)["files"] == 0


def _fac(client, admin: str, code: str, name: str, account: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = client.post(
        "/v1/fac",
        json={"code": code, "name": name, "level": 1, "account": account},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def test_fac_on_the_setup_record_bills_the_talk_record_to_the_fac_account(
    cucm_client, seed: Seed, db_url: str
) -> None:
    table = siete()
    called = "0051987654321"
    setup, talk = fac_chain(table, "48151623", "Project Lima", GATEWAY, called, 95)
    caller = table.value(talk, "callingPartyNumber")
    plan = seed.plan([("0051", RPM)])
    seed.account(caller, balance="5.00", plan=plan)  # the phone's own account: must not pay
    seed.account("700100", balance="5.00", plan=plan, anis=["700100"])
    admin = seed.token("admin")
    _fac(cucm_client, admin, "48151623", "Project Lima", "700100")

    resp = _post(cucm_client, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes([talk, setup]))
    assert resp.status_code == 200, resp.get_json()
    expected = call_cost(_rate(seed, plan), 95)
    charged = _by_uuid(db_url, table.value(talk, "pkid"))
    assert charged["billing_status"] == "charged" and charged["cost"] == expected
    assert "Project Lima" in charged["billing_note"]
    assert table.value(setup, "pkid") in charged["billing_note"]
    assert _by_uuid(db_url, table.value(setup, "pkid"))["billing_status"] == "unanswered"
    assert Decimal(seed.balance("700100")["balance"]) == Decimal("5.00") - expected
    assert seed.balance(caller)["balance"] == "5.0000"
    stored = _db(db_url, "SELECT fac_hmac, fac_from_pkid::text, row FROM cucm_cdrs")
    digest = hmac.new(FAC_KEY.encode(), b"48151623", hashlib.sha256).hexdigest()
    assert {r["fac_hmac"] for r in stored} == {digest}
    assert {r["fac_from_pkid"] for r in stored} == {table.value(setup, "pkid")}
    # the code is a credential: nowhere in clear
    dump = _db(
        db_url,
        "SELECT (SELECT string_agg(row::text, '') FROM cucm_cdrs) ||"
        " (SELECT string_agg(coalesce(after::text, '') || coalesce(before::text, ''), '')"
        " FROM audit_log) || (SELECT string_agg(coalesce(billing_note, '') ||"
        " apolo_vars::text, '') FROM cdrs) AS text",
    )[0]["text"]
    assert "48151623" not in dump and "******23" in dump


def test_fac_of_an_earlier_file_carries_over(cucm_client, seed: Seed, db_url: str) -> None:
    table = damhau()
    setup, talk = fac_chain(table, "5150", "Night shift", GATEWAY, "0051987654321", 61)
    plan = seed.plan([("0051", RPM)], effective_start=SINCE_2000)
    seed.account("700200", balance="1.00", plan=plan, anis=["700200"])
    _fac(cucm_client, seed.token("admin"), "5150", "Night shift", "700200")
    switch = seed.token("switch")
    first = _post(
        cucm_client,
        switch,
        "cdr_Stand_Alone-1_02_201510091036_1",
        table.to_bytes([setup], quoted=False),
    )
    assert first.status_code == 200
    second = _post(
        cucm_client,
        switch,
        "cdr_Stand_Alone-1_02_201510091037_2",
        table.to_bytes([talk], quoted=False),
    )
    assert second.status_code == 200 and second.get_json()["statuses"] == {"charged": 1}
    assert _by_uuid(db_url, table.value(talk, "pkid"))["account_id"] is not None
    assert Decimal(seed.balance("700200")["balance"]) < Decimal("1.00")


def test_a_file_with_fac_values_is_refused_without_the_key(
    cucm_client, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APOLO_FAC_KEY")
    table = siete()
    setup, talk = fac_chain(table, "4711", "X", GATEWAY, "0051987654321", 10)
    resp = _post(cucm_client, seed.token("switch"), SIETE_CDR_NAME, table.to_bytes([setup, talk]))
    assert resp.status_code == 503
    assert resp.get_json()["error"]["code"] == "fac_key_missing"
    assert "APOLO_FAC_KEY" in resp.get_json()["error"]["message"]
    assert _counts(db_url)["files"] == 0 and _counts(db_url)["cdrs"] == 0


def test_a_call_rated_after_the_fact_may_take_the_balance_negative(
    cucm_client, seed: Seed, db_url: str
) -> None:
    table = damhau()
    long_call = answered_row(table)  # 3974 s
    called = "0051987654321"
    row = table.fresh(long_call, destDeviceName=GATEWAY, outpulsedCalledPartyNumber=called,
                      callingPartyNumber="600300")  # fmt: skip
    plan = seed.plan([("0051", RPM)], effective_start=SINCE_2000)
    seed.account("600300", balance="0.50", plan=plan)
    resp = _post(cucm_client, seed.token("switch"), "cdr_StandAloneCluster_02_201510091036_9",
                 table.to_bytes([row], quoted=False))  # fmt: skip
    assert resp.status_code == 200
    expected = call_cost(_rate(seed, plan), int(table.value(long_call, "duration")))
    assert expected > Decimal("0.50")
    assert resp.get_json()["negative_accounts"] == ["600300"], str(resp.get_json())
    balance = Decimal(seed.balance("600300")["balance"])
    assert balance == Decimal("0.50") - expected < 0
    cdr = _by_uuid(db_url, table.value(row, "pkid"))
    assert cdr["cost"] == expected and "below zero" in cdr["billing_note"]
    alert = _db(db_url, "SELECT * FROM audit_log WHERE action = 'account.low_balance'")
    assert len(alert) == 1 and alert[0]["target"] == "account:600300"
    assert Decimal(alert[0]["after"]["balance"]) == balance


def test_a_billable_call_of_nobody_is_stored_unrated(cucm_client, seed: Seed, db_url: str) -> None:
    table = damhau()
    row = table.fresh(
        answered_row(table), destDeviceName=GATEWAY, callingPartyNumber=str(uuid.uuid4().int)[:9]
    )
    resp = _post(
        cucm_client,
        seed.token("switch"),
        "cdr_c_1_201510091036_1",
        table.to_bytes([row], quoted=False),
    )
    assert resp.status_code == 200 and resp.get_json()["statuses"] == {"unrated": 1}
    assert "no account" in _by_uuid(db_url, table.value(row, "pkid"))["billing_note"]


def test_a_file_above_the_size_limit_is_refused(
    cucm_client, seed: Seed, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = DAMHAU_CDR.read_bytes()
    monkeypatch.setenv("APOLO_CUCM_MAX_FILE_BYTES", str(len(data) - 1))
    token = seed.token("switch")
    resp = _post(cucm_client, token, DAMHAU_CDR.name, data)
    assert resp.status_code == 413
    assert _counts(db_url)["files"] == 0
    monkeypatch.setenv("APOLO_CUCM_MAX_FILE_BYTES", str(len(data)))
    assert _post(cucm_client, token, DAMHAU_CDR.name, data).status_code == 200
