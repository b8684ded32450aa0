"""err-log-dir replay: a backlog of spooled CDRs replayed with ``apolo cdr replay --direct``.

The backlog is what FreeSWITCH leaves after an outage: one ``a_<uuid>.cdr.xml`` per call,
half raw XML (encode=false), half percent-encoded (encode=true), each call holding the
reservation its authorization made (made here in one SQL statement through
``apolo_reserve``, the function the sidecar calls), plus a share of files whose CDRs are
already stored (FreeSWITCH spooled a CDR the sidecar had committed but not answered).
The figure is files per second for the whole command, process start included; its floor is
the same files read and parsed by the same pool, with no database: what the parsing alone
allows on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid as uuid_lib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from bench.cdr_ingest import Delivered
from bench.data import PBX_IDENTITY
from bench.procs import ROOT
from sidecar.cli.cdr_bulk import load_file
from sidecar.simulator.cdr_template import build_cdr

RESERVE = (
    "SELECT count(*) FILTER (WHERE r.reason = 'authorized')"
    " FROM unnest(%s::text[], %s::text[], %s::text[]) AS c(uuid, caller, callee)"
    " JOIN accounts a ON a.number = c.caller,"
    " LATERAL apolo_reserve(a.id, c.uuid, 2.00, 0.01, 600, interval '1 hour', NULL,"
    "                       c.caller, c.callee) r"
)


def _reserve(url: str, calls: list[tuple[str, str, str]]) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            RESERVE,
            ([c[0] for c in calls], [c[1] for c in calls], [c[2] for c in calls]),
        ).fetchone()
        conn.commit()
    return int(row[0]) if row else 0


def write_backlog(
    directory: Path,
    calls: list[tuple[str, str, str]],
    stored: list[tuple[str, bytes]],
    answer_us: int,
) -> int:
    for n, (uuid, caller, callee) in enumerate(calls):
        billusec = 1_000_000 + (n * 7_919_000) % 170_000_000
        xml = build_cdr(uuid, caller, callee, answer_us, billusec, PBX_IDENTITY)
        body = xml if n % 2 else quote(xml, safe="").encode("ascii")
        (directory / f"a_{uuid}.cdr.xml").write_bytes(body)
    for uuid, xml in stored:
        (directory / f"a_{uuid}.cdr.xml").write_bytes(xml)
    return len(calls) + len(stored)


def _parse_floor(directory: Path, jobs: int) -> float:
    """Seconds to read and parse every file with ``jobs`` processes, no database."""
    paths = [str(p) for p in directory.iterdir()]
    started = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_parse_only, paths, chunksize=max(1, len(paths) // (8 * jobs))))
    return time.perf_counter() - started


def _parse_only(path: str) -> bool:
    return load_file(path, 2_000_000, True).record is not None


def run(
    url: str,
    redis_url: str,
    accounts: list[str],
    numbers: list[str],
    count: int,
    stored: list[tuple[str, bytes]],
    delivered: Delivered,
) -> dict[str, Any]:
    calls = [
        (str(uuid_lib.uuid4()), accounts[n % len(accounts)], numbers[(n * 31) % len(numbers)])
        for n in range(count)
    ]
    reserved = _reserve(url, calls)
    jobs = os.cpu_count() or 1
    answer_us = (int(time.time()) - 1800) * 1_000_000
    with tempfile.TemporaryDirectory(prefix="apolo-bench-spool-") as tmp:
        spool = Path(tmp) / "spool"
        spool.mkdir()
        files = write_backlog(spool, calls, stored, answer_us)
        size = sum(p.stat().st_size for p in spool.iterdir())
        floor_dir = Path(tmp) / "floor"
        shutil.copytree(spool, floor_dir)
        parse_s = _parse_floor(floor_dir, jobs)
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url,
               "APOLO_LOG_LEVEL": "WARNING"}  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "sidecar.cli", "cdr", "replay", str(spool), "--direct"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        left = sum(1 for _ in spool.glob("*.cdr.xml"))
    if proc.returncode == 0:
        delivered.uuids.update(c[0] for c in calls)
        delivered.charged_uuids.update(c[0] for c in calls)
    return {
        "files": files,
        "new_calls": count,
        "already_stored": len(stored),
        "reserved": reserved,
        "bytes": size,
        "jobs": jobs,
        "seconds": round(seconds, 3),
        "per_second": round(files / seconds, 1),
        "parse_floor_s": round(parse_s, 3),
        "parse_floor_per_second": round(files / parse_s, 1),
        "ratio_to_parse_floor": round(parse_s / seconds, 3),
        "files_left": left,
        "exit_code": proc.returncode,
        "output": (proc.stdout + proc.stderr).strip()[-500:],
    }
