"""CDR export: ``GET /v1/cdrs/export.csv`` of N CDRs through the real sidecar, against COPY.

    python -m bench.cdr_export [--rows N] [--db apolo_bench_export]   # stand-alone

The CDRs are generated in PostgreSQL by one ``INSERT ... SELECT generate_series``: the
bench's accounts and rates, FreeSWITCH A legs with the real capture as ``raw_xml``
(charged, unanswered, rejected, unrated), B legs not billed, and CUCM rows without
``raw_xml``. Their uuids are version-5 shaped, so they never meet the uuid4 calls the other
phases post, and they get no ledger row and move no balance: the consistency counts (by the
posted uuids, and balance = ledger) are not touched. The XML is compressed with lz4 where
the server has it (with pglz, the default, 1M rows take 125 s instead of 85); compressed
either way it is over 2 kB, so it lives out of line in TOAST and the heap the export reads
is the one production has. The table is then vacuumed, as a table of past CDRs is.

The client is curl (HTTP and chunked decoding in C); this process only counts the lines
of the body. Memory: the RSS of every gunicorn worker before the export, and its peak
during it: the kernel's high-water mark (``VmHWM``), reset just before the request through
``/proc/<pid>/clear_refs``, cross-checked by polling ``VmRSS`` every 20 ms. The floor is
PostgreSQL alone: ``COPY (the export's SELECT) TO STDOUT (FORMAT csv)`` read by psql.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import psycopg
import requests
from psycopg import sql
from psycopg.rows import dict_row

from bench import data, rate_import
from bench.procs import Server, start_sidecar, worker_pids
from sidecar.auth import hash_token, new_token
from sidecar.repo import cdrs as cdrs_repo
from sidecar.repo import tokens as token_repo
from sidecar.simulator.cdr_template import SIM_CORE_UUID, SIM_SWITCHNAME, build_cdr

RATES_USED = 5_000  # distinct destinations the generated calls go to
_PLACEHOLDER = "00000000-0000-4000-8000-00000000beef"
# one row per g; k = g % 20 picks its kind: 0-12 charged FreeSWITCH A leg, 13 unanswered,
# 14 rejected, 15 unrated (no account), 16 B leg (not billed), 17-19 CUCM (charged, no XML)
_GENERATE = """
WITH acc AS (
    SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, number FROM accounts
), rt AS (
    SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, prefix, rate_per_minute,
           connection_fee, initial_increment, increment
      FROM rates WHERE plan_id = (SELECT plan_id FROM accounts ORDER BY id LIMIT 1)
     ORDER BY id LIMIT %(rates)s
), g AS (
    SELECT g, g %% 20 AS k, md5('apolo-bench-export:' || g) AS h,
           1 + (g * 7919) %% 600 AS secs,
           %(t0)s::timestamptz + g * %(step)s * interval '1 millisecond' AS start_at
      FROM generate_series(1::bigint, %(count)s) g
), c AS (
    SELECT g.*, a.id AS account_id, a.number AS account, r.*,
           CASE WHEN k >= 17 THEN 'cucm:bench-' || g
                ELSE substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-5' || substr(h, 14, 3)
                     || '-a' || substr(h, 18, 3) || '-' || substr(h, 21, 12) END AS uuid,
           r.prefix || substr(lpad((g * 104729)::text, 15, '0'), 1, 15 - length(r.prefix))
               AS dest,
           CASE WHEN g.secs <= r.initial_increment THEN r.initial_increment
                ELSE r.initial_increment
                     + ceil((g.secs - r.initial_increment)::numeric / r.increment)::int
                       * r.increment END AS billed
      FROM g
      JOIN acc a ON a.n = g.g %% %(accounts)s
      JOIN rt r ON r.n = (g.g * 31) %% %(rates_found)s
)
INSERT INTO cdrs (source, call_uuid, leg, core_uuid, switchname, direction, caller, callee,
                  destination, account_id, start_at, answer_at, end_at, billusec, billsec,
                  fs_billsec, hangup_cause, hangup_cause_q850, rate_id, rate_prefix,
                  rate_per_minute, connection_fee, billed_seconds, cost, billing_status,
                  billing_note, raw_xml, received_at)
SELECT CASE WHEN k >= 17 THEN 'cucm' ELSE 'freeswitch' END,
       uuid,
       CASE WHEN k = 16 THEN 'b' ELSE 'a' END,
       CASE WHEN k < 17 THEN %(core_uuid)s END,
       CASE WHEN k < 17 THEN %(switchname)s END,
       CASE WHEN k = 16 THEN 'outbound' WHEN k < 17 THEN 'inbound' END,
       CASE WHEN k = 15 THEN '7' || lpad(g::text, 9, '0') ELSE account END,
       dest, dest,
       CASE WHEN k IN (15, 16) THEN NULL ELSE account_id END,
       start_at,
       CASE WHEN k IN (13, 14) THEN NULL ELSE start_at + interval '4 seconds' END,
       CASE WHEN k IN (13, 14) THEN start_at + interval '20 seconds'
            ELSE start_at + interval '4 seconds' + secs * interval '1 second' END,
       CASE WHEN k IN (13, 14) THEN 0 ELSE secs * 1000000 - (g * 37) %% 1000000 END,
       CASE WHEN k IN (13, 14) THEN 0 ELSE secs END,
       CASE WHEN k IN (13, 14) OR k >= 17 THEN NULL ELSE secs END,
       CASE k WHEN 13 THEN 'NO_ANSWER' WHEN 14 THEN 'CALL_REJECTED' ELSE 'NORMAL_CLEARING' END,
       CASE k WHEN 13 THEN 19 WHEN 14 THEN 21 ELSE 16 END,
       CASE WHEN k <= 12 OR k >= 17 THEN id END,
       CASE WHEN k <= 12 OR k >= 17 THEN prefix END,
       CASE WHEN k <= 12 OR k >= 17 THEN rate_per_minute END,
       CASE WHEN k <= 12 OR k >= 17 THEN connection_fee END,
       CASE WHEN k <= 12 OR k >= 17 THEN billed END,
       CASE WHEN k <= 12 OR k >= 17
            THEN round(connection_fee + billed * rate_per_minute / 60, 4) END,
       CASE WHEN k <= 12 OR k >= 17 THEN 'charged' WHEN k IN (13, 14) THEN 'unanswered'
            WHEN k = 15 THEN 'unrated' ELSE 'not_billed' END,
       CASE k WHEN 15 THEN 'no account matches the caller'
              WHEN 16 THEN 'b-leg outbound: billed on the call''s A leg' END,
       CASE WHEN k < 17 THEN replace(%(xml)s, %(placeholder)s, uuid) END,
       start_at + interval '1 minute' + secs * interval '1 second'
  FROM c
"""


def generate(url: str, count: int) -> dict[str, Any]:
    """Insert ``count`` CDRs (see the module docstring), then VACUUM ANALYZE the table."""
    answer_us = (int(time.time()) - 86_400) * 1_000_000
    xml = build_cdr(_PLACEHOLDER, "90000001", "519876543210000", answer_us, 61_000_000).decode()
    step_ms = max(1, 30 * 86_400_000 // max(count, 1))  # spread over about 30 days
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM (SELECT 1 FROM"
            " rates WHERE plan_id = (SELECT plan_id FROM accounts ORDER BY id LIMIT 1)"
            " LIMIT %s) r), now() - %s * interval '1 millisecond'",
            (RATES_USED, count * step_ms + 86_400_000),
        ).fetchone()
        assert found is not None
        accounts, rates, t0 = int(found[0]), int(found[1]), found[2]
        if not accounts or not rates:
            raise RuntimeError("the CDR export bench needs accounts on a plan with rates")
        lz4 = conn.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        ).fetchone()
        compression = "lz4" if lz4 and lz4[0] else "pglz"
        if compression == "lz4":  # faster than pglz; both leave it out of line (> 2 kB)
            conn.execute("SET LOCAL default_toast_compression = lz4")
        started = time.perf_counter()
        inserted = conn.execute(
            _GENERATE,
            {"count": count, "accounts": accounts, "rates": RATES_USED, "rates_found": rates,
             "t0": t0, "step": step_ms, "xml": xml, "placeholder": _PLACEHOLDER,
             "core_uuid": SIM_CORE_UUID, "switchname": SIM_SWITCHNAME},
        ).rowcount  # fmt: skip
        conn.commit()
        insert_s = time.perf_counter() - started
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) cdrs")
        vacuum_s = time.perf_counter() - started
        row = conn.execute(
            "SELECT pg_relation_size('cdrs'), pg_table_size('cdrs'), count(*) FROM cdrs"
        ).fetchone()
    assert row is not None
    return {
        "generated": inserted,
        "generate_s": round(insert_s, 2),
        "vacuum_s": round(vacuum_s, 2),
        "raw_xml_bytes": len(xml),
        "raw_xml_compression": compression,
        "cdrs_in_table": int(row[2]),
        "heap_mib": round(row[0] / 2**20, 1),
        "table_mib_with_toast": round(row[1] / 2**20, 1),
    }


def viewer_token(url: str) -> str:
    """A viewer API token, created as ``apolo tokens create --role viewer`` does."""
    token = new_token()
    with psycopg.connect(url, row_factory=dict_row) as conn:
        token_repo.create(conn, "bench-export", "viewer", hash_token(token))
        conn.commit()
    return token


def _status_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


class _RssPoller(threading.Thread):
    def __init__(self, pids: list[int], every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.peak = dict.fromkeys(pids, 0)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], _status_kib(pid)["VmRSS"])
            self.done.wait(self.every)


def _count_lines(stream: IO[bytes]) -> tuple[int, int]:
    lines = size = 0
    while block := stream.read(1 << 20):
        lines += block.count(b"\n")
        size += len(block)
    return lines, size


def _warm_up(sidecar: Server, token: str) -> None:
    """A few empty exports, so the figures hold no first-request set-up of a worker."""
    for _ in range(6):
        requests.get(
            sidecar.url + "/v1/cdrs/export.csv",
            params={"uuid": "none"},
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=30,
        ).raise_for_status()


def export(sidecar: Server, token: str) -> dict[str, Any]:
    """One ``GET /v1/cdrs/export.csv`` (no filter: every CDR) streamed through curl."""
    pids = worker_pids(sidecar.proc.pid)
    before = {pid: _status_kib(pid)["VmRSS"] for pid in pids}
    hwm_reset = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")
        except OSError:
            hwm_reset = False  # the high-water mark then counts from the worker's start
    poller = _RssPoller(pids)
    poller.start()
    cmd = ["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {token}",
           "-w", "%{stderr}%{http_code} %{time_starttransfer}",
           sidecar.url + "/v1/cdrs/export.csv"]  # fmt: skip
    started = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as curl:
        assert curl.stdout is not None and curl.stderr is not None
        lines, size = _count_lines(curl.stdout)
        status_line = curl.stderr.read().decode(errors="replace").strip()
    seconds = time.perf_counter() - started
    poller.done.set()
    poller.join()
    hwm = {pid: _status_kib(pid)["VmHWM"] for pid in pids}
    written = status_line.rsplit("\n", 1)[-1].split()  # -w: status, seconds to first byte
    if curl.returncode != 0 or len(written) != 2 or written[0] != "200":
        raise RuntimeError(f"export failed: curl exit {curl.returncode}, {status_line!r}")
    rows = max(lines - 1, 0)  # the header; no generated cell holds a newline
    growth_hwm = max(hwm[p] - before[p] for p in pids) if hwm_reset else None
    growth_poll = max(poller.peak[p] - before[p] for p in pids)
    return {
        "rows": rows,
        "bytes": size,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "mib_per_s": round(size / 2**20 / seconds, 1),
        "first_byte_ms": round(float(written[1]) * 1000, 1),
        "workers": len(pids),
        "worker_rss_before_mib": [round(before[p] / 1024, 1) for p in pids],
        "worker_peak_mib": [round(max(hwm[p], poller.peak[p]) / 1024, 1) for p in pids],
        "rss_growth_mib": round(max(growth_hwm or 0, growth_poll) / 1024, 1),
        "rss_growth_hwm_mib": None if growth_hwm is None else round(growth_hwm / 1024, 1),
        "rss_growth_polled_mib": round(growth_poll / 1024, 1),
        "memory_method": (
            "max over workers of (peak - RSS before); peak = VmHWM reset by clear_refs 5"
            if hwm_reset
            else "max over workers of (polled VmRSS peak - RSS before); VmHWM not resettable"
        ),
    }


def copy_floor(url: str) -> dict[str, Any]:
    """The same SELECT as the export (same joins and order), as PostgreSQL's own CSV."""
    query = cdrs_repo._EXPORT + " ORDER BY c.id"
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url,
           "-c", f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)"]  # fmt: skip
    started = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as psql:
        assert psql.stdout is not None
        lines, size = _count_lines(psql.stdout)
    seconds = time.perf_counter() - started
    if psql.returncode != 0:
        raise RuntimeError(f"COPY floor failed: psql exit {psql.returncode}")
    return {
        "rows": lines - 1,
        "bytes": size,
        "seconds": round(seconds, 2),
        "rows_per_s": round((lines - 1) / seconds),
    }


def run(url: str, redis_url: str, fs_auth: tuple[str, str], count: int) -> dict[str, Any]:
    """Generate ``count`` CDRs, export every CDR of the table through a sidecar started for
    it, then COPY the same rows."""
    out: dict[str, Any] = {"generate": generate(url, count)}
    expected = out["generate"]["cdrs_in_table"]
    token = viewer_token(url)
    with start_sidecar(url, redis_url, fs_auth) as sidecar:
        _warm_up(sidecar, token)
        out["export"] = export(sidecar, token)
    out["floor_copy"] = copy_floor(url)
    out["rows_expected"] = expected
    out["rows_exact"] = out["export"]["rows"] == expected == out["floor_copy"]["rows"]
    out["ratio_to_copy_floor"] = round(out["export"]["seconds"] / out["floor_copy"]["seconds"], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="apolo_bench_export")
    parser.add_argument("--redis-db", type=int, default=12, help="the sidecar needs one")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    server = os.environ["DATABASE_URL"]
    redis_base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = data.fresh_database(server, args.db)
    plan_prefixes = data.prefixes(RATES_USED, 1)
    with tempfile.TemporaryDirectory(prefix="apolo-bench-") as tmp:
        csv_path = Path(tmp) / "rates.csv"
        data.write_rate_csv(csv_path, plan_prefixes)
        rate_import.run(url, "bench", csv_path, len(plan_prefixes))
    data.create_accounts(url, "bench", data.account_numbers(100), Decimal("1000"))
    result = run(url, f"{redis_base}/{args.redis_db}", ("freeswitch", "bench-export"), args.rows)
    print(json.dumps(result, indent=2))
    if not args.keep:
        with psycopg.connect(data.with_db(server, "postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(args.db)))
    return 0 if result["rows_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
