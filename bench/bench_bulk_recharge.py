"""Bulk recharge: parse time of CSV and XLSX files and the whole upload through the app.

    DATABASE_URL=... REDIS_URL=... python bench/bench_bulk_recharge.py [ROWS]

Creates the throwaway database ``apolo_bench_recharge`` on the server of DATABASE_URL,
ROWS accounts (default 10,000, the default APOLO_BULK_MAX_ROWS), then times parsing the
CSV and the XLSX file, and one all-or-nothing upload of each through the Flask app
(validation, locks, one ledger row and one audit row per line, one transaction).
"""

from __future__ import annotations

import io
import os
import sys
import time

import psycopg
from openpyxl import Workbook
from psycopg import sql

from sidecar import create_app
from sidecar.auth import hash_token, new_token
from sidecar.imports.recharges import RechargeLimits, parse_recharge_file
from sidecar.migrations import upgrade

NAME = "apolo_bench_recharge"


def files(rows: int) -> tuple[bytes, bytes]:
    csv_text = "account,amount,note\n" + "".join(
        f"{700000 + i},{1 + i % 50}.25,bench\n" for i in range(rows)
    )
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["account", "amount", "note"])
    for i in range(rows):
        sheet.append([str(700000 + i), 1 + i % 50 + 0.25, "bench"])
    out = io.BytesIO()
    book.save(out)
    return csv_text.encode(), out.getvalue()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    server = os.environ["DATABASE_URL"]
    info = psycopg.conninfo.conninfo_to_dict(server)
    admin_url = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(NAME)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(NAME)))
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": NAME})
    token = new_token()
    with psycopg.connect(url) as conn:
        upgrade(conn)
        conn.execute("INSERT INTO rate_plans (name) VALUES ('bench')")
        conn.execute(
            "INSERT INTO accounts (number, plan_id, type) SELECT (700000 + g)::text,"
            " (SELECT id FROM rate_plans), 'prepaid' FROM generate_series(0, %s - 1) g",
            (rows,),
        )
        conn.execute(
            "INSERT INTO api_tokens (name, role, token_hash) VALUES ('bench', 'admin', %s)",
            (hash_token(token),),
        )
        conn.commit()

    csv_data, xlsx_data = files(rows)
    limits = RechargeLimits(max_rows=rows, max_bytes=max(len(csv_data), len(xlsx_data)) + 1)
    for label, data in (("csv", csv_data), ("xlsx", xlsx_data)):
        started = time.perf_counter()
        parsed = parse_recharge_file(data, limits)
        seconds = time.perf_counter() - started
        assert len(parsed.rows) == rows and not parsed.errors
        print(f"parse {label}: {rows:,} rows, {len(data) / 1e3:.0f} kB in {seconds:.2f}s"
              f" = {rows / seconds:,.0f} rows/s")  # fmt: skip

    app = create_app({"database_url": url, "redis_url": os.environ.get("REDIS_URL", "")
                      or "redis://127.0.0.1:6379/0", "max_document_bytes": 50_000_000})  # fmt: skip
    app.extensions["apolo_recharge_limits"] = limits
    client = app.test_client()
    try:
        for label, data in (("csv", csv_data), ("xlsx", xlsx_data)):
            started = time.perf_counter()
            resp = client.post(
                "/v1/accounts/bulk-recharges",
                data=data,
                headers={"Authorization": f"Bearer {token}"},
            )
            seconds = time.perf_counter() - started
            assert resp.status_code == 201, resp.get_json()
            print(f"upload {label}: {rows:,} recharges applied in one transaction in"
                  f" {seconds:.2f}s = {rows / seconds:,.0f} rows/s")  # fmt: skip
    finally:
        app.extensions["apolo_rates"].stop()


if __name__ == "__main__":
    main()
