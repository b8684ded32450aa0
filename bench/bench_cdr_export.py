"""CDR CSV export: rows/s and peak traced memory of the streaming generator.

    DATABASE_URL=... python bench/bench_cdr_export.py [ROWS]

Creates the throwaway database ``apolo_bench_export`` on the server of DATABASE_URL,
fills it with ROWS charged CDRs (default 1,000,000) and streams them through
``sidecar.api.cdrs.export_stream`` twice: once plain (throughput), once under
tracemalloc (peak memory, which should not grow with ROWS).
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc

import psycopg
from psycopg import sql

from sidecar.api.cdrs import export_stream
from sidecar.migrations import upgrade
from sidecar.repo.cdrs import CdrFilter

NAME = "apolo_bench_export"


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    server = os.environ["DATABASE_URL"]
    info = psycopg.conninfo.conninfo_to_dict(server)
    with psycopg.connect(psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"}),
                         autocommit=True) as admin:  # fmt: skip
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(NAME)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(NAME)))
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": NAME})
    with psycopg.connect(url) as conn:
        upgrade(conn)
        started = time.monotonic()
        conn.execute(
            "INSERT INTO cdrs (call_uuid, leg, caller, callee, destination, start_at, answer_at,"
            " end_at, billusec, billsec, hangup_cause, rate_prefix, rate_per_minute, cost,"
            " billing_status) SELECT 'b-' || g, 'a', '100001', '51' || g, '51' || g,"
            " now() - g * interval '1 second', now() - g * interval '1 second', now(),"
            " 60000000, 60, 'NORMAL_CLEARING', '51', 0.6, 0.6, 'charged'"
            " FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.commit()
        print(f"filled {rows:,} CDRs in {time.monotonic() - started:.1f}s")

    started = time.monotonic()
    total = sum(len(line) for line in export_stream(url, CdrFilter()))
    seconds = time.monotonic() - started
    print(f"export: {rows:,} rows, {total / 1e6:.1f} MB in {seconds:.1f}s"
          f" = {rows / seconds:,.0f} rows/s")  # fmt: skip

    tracemalloc.start()
    for _ in export_stream(url, CdrFilter()):
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory while streaming: {peak / 1e6:.1f} MB"
          f" ({peak / total:.1%} of the output)")  # fmt: skip
    with psycopg.connect(psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"}),
                         autocommit=True) as admin:  # fmt: skip
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(NAME)))


if __name__ == "__main__":
    main()
