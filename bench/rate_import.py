"""Rate import: ``apolo rates import`` of the generated CSV, against a bare COPY of it.

The floor is PostgreSQL alone: ``COPY`` of the same file into a temporary table of text
columns (no parsing, validation, indexes or triggers), over the same connection kind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.procs import ROOT


def copy_floor(url: str, csv_path: Path) -> float:
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_copy_floor (prefix text, name text, rate_per_minute text,"
            " connection_fee text, initial_increment text, increment text, effective_start text)"
        )
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY bench_copy_floor FROM STDIN (FORMAT csv, HEADER true)") as copy,
            csv_path.open("rb") as fh,
        ):
            while block := fh.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.perf_counter() - started


def run(url: str, plan: str, csv_path: Path, rows: int) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": url}
    cmd = [
        sys.executable,
        "-m",
        "sidecar.cli",
        "rates",
        "import",
        "--plan",
        plan,
        "--replace",
        str(csv_path),
    ]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, cwd=ROOT, capture_output=True, timeout=900)
    import_s = time.perf_counter() - started
    floor_s = copy_floor(url, csv_path)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT p.id, count(r.id) FROM rate_plans p LEFT JOIN rates r ON r.plan_id = p.id"
            " WHERE p.name = %s GROUP BY p.id",
            (plan,),
        ).fetchone()
    assert row is not None, f"plan {plan} missing after import"
    plan_id, stored = int(row[0]), int(row[1])
    return {
        "plan_id": plan_id,
        "rows": rows,
        "stored": stored,
        "import_s": round(import_s, 2),
        "rows_per_s": round(rows / import_s),
        "copy_floor_s": round(floor_s, 2),
        "ratio_to_copy_floor": round(import_s / floor_s, 1),
    }
