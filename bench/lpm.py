"""LPM: the production RateIndex against the original design's per-call SQL, same numbers.

Baseline: one indexed query per number, ``prefix = ANY(all prefixes of the number)``
ordered by length, on the real ``rates`` table and its ``(plan_id, prefix)`` btree.
Both answer the same numbers in the same run, and their answers are compared: any
disagreement is counted (``mismatches``) and must be zero. Memory is the RSS a worker
keeps after building the index (measured in a fresh process, so the figure is its own);
reload time is what the rate catalog does on a plan change: stream the snapshot, build.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from bench.procs import ROOT
from sidecar.db import connect_cli
from sidecar.rating import RateIndex
from sidecar.repo import rates as rates_repo

_SQL_LPM = (
    "SELECT id FROM rates WHERE plan_id = %s AND prefix = ANY(%s) AND enabled"
    " AND effective_start <= %s AND (effective_end IS NULL OR %s < effective_end)"
    " ORDER BY length(prefix) DESC, priority DESC, effective_start DESC LIMIT 1"
)


def build_index(url: str, plan_id: int) -> tuple[RateIndex, float]:
    """Reload as the catalog does: one snapshot streamed into a fresh index; seconds taken."""
    with connect_cli(url) as conn:  # the connection kind the rate catalog uses
        started = time.perf_counter()
        with rates_repo.plan_snapshot_text(conn, plan_id) as (version, rows):
            index = RateIndex.from_text_rows(rows, version)
        return index, time.perf_counter() - started


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def index_memory(url: str, plan_id: int) -> dict[str, float]:
    """RSS kept by one built index, in a fresh interpreter (imports already loaded);
    then again after ``malloc_trim`` hands freed heap back, which separates what the
    index holds from what the build left behind in the allocator."""
    code = (
        "import ctypes, gc, json, sys; from bench import lpm; "
        "gc.collect(); before = lpm._rss_kib(); "
        "index, seconds = lpm.build_index(sys.argv[1], int(sys.argv[2])); gc.collect(); "
        "kept = lpm._rss_kib() - before; ctypes.CDLL('libc.so.6').malloc_trim(0); "
        "print(json.dumps({'rss_mib': kept / 1024, 'rss_trimmed_mib': "
        "(lpm._rss_kib() - before) / 1024, 'rates': len(index), 'build_s': seconds,"
        " 'trie_mib': len(index._trie.tobytes()) / 1048576}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, str(plan_id)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _sql_lookups(url: str, plan_id: int, numbers: list[str], at: datetime) -> list[int | None]:
    found: list[int | None] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for number in numbers:
            candidates = [number[:n] for n in range(1, len(number) + 1)]
            row = conn.execute(_SQL_LPM, (plan_id, candidates, at, at)).fetchone()
            found.append(None if row is None else int(row[0]))
    return found


ROUNDS = 3  # best of: the machine is shared, the fastest round is the least disturbed
T = TypeVar("T")


def _best_of(rounds: int, fn: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def run(url: str, plan_id: int, numbers: list[str], sql_count: int) -> dict[str, Any]:
    at = datetime.now(UTC)
    index, reload_s = build_index(url, plan_id)
    gc.collect()

    index_s, answers = _best_of(ROUNDS, lambda: [index.lookup(n, at) for n in numbers])
    index_ids = [None if r is None else r.id for r in answers]

    sql_numbers = numbers[:sql_count]
    sql_s, sql_ids = _best_of(ROUNDS, lambda: _sql_lookups(url, plan_id, sql_numbers, at))

    mismatches = sum(1 for a, b in zip(index_ids, sql_ids, strict=False) if a != b)
    index_rate = len(numbers) / index_s
    sql_rate = len(sql_numbers) / sql_s
    memory = index_memory(url, plan_id)
    return {
        "rates": len(index),
        "lookups": len(numbers),
        "rounds_best_of": ROUNDS,
        "rated": sum(1 for a in index_ids if a is not None),
        "index_lookups_per_s": round(index_rate),
        "index_lookup_us": round(index_s / len(numbers) * 1e6, 2),
        "sql_lookups": len(sql_numbers),
        "sql_lookups_per_s": round(sql_rate),
        "sql_lookup_us": round(sql_s / len(sql_numbers) * 1e6, 1),
        "ratio_index_vs_sql": round(index_rate / sql_rate, 1),
        "mismatches": mismatches,
        "reload_s": round(reload_s, 3),
        "index_rss_mib": round(memory["rss_mib"], 1),
        "index_rss_bytes_per_rate": round(memory["rss_mib"] * 1048576 / max(1, len(index)), 1),
        "index_rss_after_trim_mib": round(memory["rss_trimmed_mib"], 1),
        "trie_mib": round(memory["trie_mib"], 1),
    }
