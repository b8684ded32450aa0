"""Recharges: Idempotency-Key semantics, bulk CSV/XLSX uploads applied all-or-nothing."""

from __future__ import annotations

import io
import threading
from decimal import Decimal

import psycopg
import pytest
from openpyxl import Workbook

from sidecar.imports.recharges import RechargeLimits


@pytest.fixture(autouse=True)
def _no_keys(clean: None, db_url: str) -> None:
    # conftest's `clean` predates sql/004_access.sql and does not empty its tables
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("TRUNCATE idempotency_keys")


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def ledger(db_url: str, kind: str = "recharge") -> list[tuple[str, Decimal, str]]:
    with psycopg.connect(db_url) as c:
        return c.execute(
            "SELECT a.number, l.amount, l.note FROM ledger l JOIN accounts a ON a.id = l.account_id"
            " WHERE l.kind = %s ORDER BY l.id",
            (kind,),
        ).fetchall()


def count(db_url: str, sql: str) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------ idempotency


def test_retry_with_same_key_recharges_once(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="1.00")
    op = seed.token("operator", name="noc")
    headers = bearer(op, **{"Idempotency-Key": "topup-42"})
    first = client.post("/v1/accounts/100001/recharges", json={"amount": "5"}, headers=headers)
    assert first.status_code == 201 and first.get_json()["balance"] == "6.0000"
    assert "Idempotent-Replayed" not in first.headers
    # a later recharge without a key moves the balance; the replay still answers the first body
    client.post("/v1/accounts/100001/recharges", json={"amount": "1"}, headers=bearer(op))
    again = client.post("/v1/accounts/100001/recharges", json={"amount": "5"}, headers=headers)
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert seed.balance("100001")["balance"] == "7.0000"
    assert ledger(db_url) == [("100001", Decimal("5.0000"), ""), ("100001", Decimal("1.0000"), "")]
    assert count(db_url, "SELECT count(*) FROM audit_log WHERE action = 'account.recharge'") == 2


def test_same_key_different_request_is_a_conflict(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    seed.account("100002")
    op = seed.token("operator")
    headers = bearer(op, **{"Idempotency-Key": "k1"})
    assert (
        client.post("/v1/accounts/100001/recharges", json={"amount": "5"}, headers=headers)
    ).status_code == 201
    for url, body in [
        ("/v1/accounts/100001/recharges", {"amount": "6"}),
        ("/v1/accounts/100001/recharges", {"amount": "5", "note": "x"}),
        ("/v1/accounts/100002/recharges", {"amount": "5"}),
    ]:
        resp = client.post(url, json=body, headers=headers)
        assert resp.status_code == 409, (url, body)
        assert resp.get_json()["error"]["code"] == "idempotency_key_reused"
    # the key belongs to its caller: another token may use the same string
    other = bearer(seed.token("admin", name="other"), **{"Idempotency-Key": "k1"})
    resp = client.post("/v1/accounts/100002/recharges", json={"amount": "5"}, headers=other)
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp.headers
    assert [n for n, _, _ in ledger(db_url)] == ["100001", "100002"]


def test_failed_request_leaves_no_key(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    op = seed.token("operator")
    headers = bearer(op, **{"Idempotency-Key": "early"})
    body = {"amount": "2"}
    assert (
        client.post("/v1/accounts/100001/recharges", json=body, headers=headers).status_code == 404
    )
    assert count(db_url, "SELECT count(*) FROM idempotency_keys") == 0
    seed.account("100001", balance="0")
    resp = client.post("/v1/accounts/100001/recharges", json=body, headers=headers)
    assert resp.status_code == 201 and resp.get_json()["balance"] == "2.0000"
    for amount in ("1e20", "0", "-1", "1.00001"):
        resp = client.post(
            "/v1/accounts/100001/recharges", json={"amount": amount}, headers=bearer(op)
        )
        assert resp.status_code == 400, amount
    for bad in ("", "x" * 256, "caf\u00e9"):
        resp = client.post(
            "/v1/accounts/100001/recharges",
            json=body,
            headers=bearer(op, **{"Idempotency-Key": bad}),
        )
        assert resp.status_code == 400, bad
    assert seed.balance("100001")["balance"] == "2.0000"


def test_huge_amount_is_a_clear_400(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    resp = client.post(
        "/v1/accounts/100001/recharges",
        json={"amount": "1e30"},
        headers=bearer(seed.token("operator")),
    )
    assert resp.status_code == 400


def test_concurrent_retries_recharge_once(app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="0")
    headers = bearer(seed.token("operator"), **{"Idempotency-Key": "race"})
    answers: list[tuple[int, object]] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        resp = client.post("/v1/accounts/100001/recharges", json={"amount": "3"}, headers=headers)
        answers.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(answers) == 6
    assert {status for status, _ in answers} == {201}
    assert all(body == answers[0][1] for _, body in answers)
    assert seed.balance("100001")["balance"] == "3.0000"
    assert len(ledger(db_url)) == 1


# ------------------------------------------------------------------ bulk


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client, token: str, data: bytes, query: str = "", **headers: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/accounts/bulk-recharges" + query,
        data={"file": (io.BytesIO(data), "topups.csv")},
        content_type="multipart/form-data",
        headers=bearer(token, **headers),
    )


def test_bulk_csv_with_a_bad_row_changes_nothing(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="1")
    seed.account("100002", balance="1")
    op = seed.token("operator")
    data = b"account,amount\n100001,5\n404404,3\n100002,abc\n"
    resp = upload(client, op, data)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "invalid_file"
    assert [(e["line"], e["column"]) for e in error["details"]["errors"]] == [
        (3, "account"),
        (4, "amount"),
    ]
    assert "404404" in error["details"]["errors"][0]["message"]
    assert ledger(db_url) == []
    assert count(db_url, "SELECT count(*) FROM audit_log WHERE actor <> 'test'") == 0
    assert seed.balance("100001")["balance"] == "1.0000"


def test_bulk_csv_applies_all_rows_with_a_summary(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="1")
    seed.account("100002", balance="0", anis=["5550002"])
    op = seed.token("operator", name="noc")
    data = b"extension,amount,note\n100001,5.25,promo\n5550002,10\n"
    preview = upload(client, op, data, "?dry_run=true")
    assert preview.status_code == 200 and preview.get_json()["applied"] is False
    assert ledger(db_url) == []
    resp = upload(client, op, data)
    assert resp.status_code == 201, resp.get_json()
    summary = resp.get_json()
    assert summary["applied"] is True and summary["rows"] == 2 and summary["total"] == "15.25"
    assert [
        (r["line"], r["account"], r["balance_before"], r["balance_after"])
        for r in summary["recharges"]
    ] == [(2, "100001", "1.0000", "6.2500"), (3, "100002", "0.0000", "10.0000")]
    assert preview.get_json()["recharges"] == summary["recharges"]
    assert ledger(db_url) == [
        ("100001", Decimal("5.2500"), "promo"),
        ("100002", Decimal("10.0000"), "bulk recharge topups.csv"),
    ]
    with psycopg.connect(db_url) as c:
        audits = c.execute(
            "SELECT actor, action, target, after->>'balance' FROM audit_log"
            " WHERE actor <> 'test' ORDER BY id"
        ).fetchall()
    assert audits[:2] == [
        ("token:noc", "account.recharge", "account:100001", "6.2500"),
        ("token:noc", "account.recharge", "account:100002", "10.0000"),
    ]
    assert audits[2][1:3] == ("account.bulk_recharge", f"file:{summary['file_sha256']}")


def test_bulk_xlsx_raw_body_and_idempotent_retry(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="0")
    seed.account("100002", balance="0")
    admin = seed.token("admin")
    data = xlsx([["Account", "Amount"], ["100001", 2.5], [100002, 7]])
    headers = bearer(admin, **{"Idempotency-Key": "march-file"})
    sheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    first = client.post(
        "/v1/accounts/bulk-recharges", data=data, content_type=sheet, headers=headers
    )
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["format"] == "xlsx" and first.get_json()["total"] == "9.5"
    again = client.post(
        "/v1/accounts/bulk-recharges", data=data, content_type=sheet, headers=headers
    )
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert seed.balance("100001")["balance"] == "2.5000"
    assert seed.balance("100002")["balance"] == "7.0000"
    other_file = xlsx([["Account", "Amount"], ["100001", 1]])
    resp = client.post(
        "/v1/accounts/bulk-recharges", data=other_file, content_type=sheet, headers=headers
    )
    assert resp.status_code == 409


def test_bulk_rejects_same_account_twice_and_bad_files(client, seed, app, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="0", anis=["100001", "5550001"])
    op = seed.token("operator")
    resp = upload(client, op, b"extension,amount\n100001,1\n5550001,2\n")
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"]["errors"][0]["line"] == 3
    resp = upload(client, op, b"who,what\n1,2\n")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "invalid_file"
    resp = client.post(
        "/v1/accounts/bulk-recharges",
        data={"other": (io.BytesIO(b"x"), "x.csv")},
        content_type="multipart/form-data",
        headers=bearer(op),
    )
    assert resp.status_code == 400
    app.extensions["apolo_recharge_limits"] = RechargeLimits(max_bytes=64, max_rows=2)
    resp = upload(client, op, b"account,amount\n" + b"100001,1\n" * 3)
    assert resp.status_code == 400 and "more than 2 rows" in resp.get_json()["error"]["message"]
    resp = upload(client, op, b"account,amount,note\n100001,1," + b"n" * 100 + b"\n")
    assert resp.status_code in (400, 413)
    assert ledger(db_url) == []


def test_bulk_roles(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001")
    data = b"account,amount\n100001,1\n"
    assert upload(client, seed.token("viewer"), data).status_code == 403
    resp = client.post(
        "/v1/accounts/bulk-recharges", data=data, auth=("freeswitch", "test-fs-secret")
    )
    assert resp.status_code == 403
    assert client.post("/v1/accounts/bulk-recharges", data=data).status_code == 401
