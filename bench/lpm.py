"""LPM: the production RateIndex against the original design's per-call SQL, same numbers.

Baseline: one indexed query per number, ``prefix = ANY(all prefixes of the number)``
ordered by length, on the real ``rates`` table and its ``(plan_id, prefix)`` btree.
Both answer the same numbers in the same run. The per-call SQL is timed on the first
``sql_count`` numbers (it is ~100x slower); the agreement check covers every number the
index answered: each one is also answered by the same query in one set-based statement
(``_bulk_sql_lookups``, untimed), and the timed per-call answers are checked too. Any
disagreement is counted (``mismatches``, over ``compared`` numbers) and must be zero.

Reload is what the rate catalog does on a plan change: the first worker builds the
version's file in a child process (COPY, build, save) and maps it; every other worker
(``reload_map_s``) only maps it. Memory is measured on ``WORKERS`` fresh processes that
each load the index the production way (a ``RateCatalog``), answer every bench number
(so every page a worker could touch is touched) and stay alive together, so their
``/proc/<pid>/smaps_rollup`` show what sharing the file gives: USS (private), PSS (the
shared pages divided among the processes mapping them) and RSS (shared pages counted
whole) and anonymous memory (heap), each as growth over the process before it loaded the
index, and peak RSS. One more process builds in-process instead, to show what the child
spares a worker: the build's peak, and what its heap keeps afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from bench.procs import ROOT, smaps_of
from sidecar.db import connect_cli
from sidecar.rating import RateIndex
from sidecar.services.rate_catalog import RateCatalog

_SQL_LPM = (
    "SELECT id FROM rates WHERE plan_id = %s AND prefix = ANY(%s) AND enabled"
    " AND effective_start <= %s AND (effective_end IS NULL OR %s < effective_end)"
    " ORDER BY length(prefix) DESC, priority DESC, effective_start DESC LIMIT 1"
)
# the same query for many numbers at once (the agreement check, untimed): row i answers
# number i, NULL when no rate matches
_SQL_LPM_BULK = (
    "SELECT r.id FROM unnest(%s::text[]) WITH ORDINALITY AS n(number, i)"
    " LEFT JOIN LATERAL (SELECT id FROM rates WHERE plan_id = %s AND prefix = ANY("
    "  ARRAY(SELECT left(n.number, k) FROM generate_series(1, length(n.number)) AS k))"
    "  AND enabled AND effective_start <= %s AND (effective_end IS NULL OR %s < effective_end)"
    "  ORDER BY length(prefix) DESC, priority DESC, effective_start DESC LIMIT 1) r ON true"
    " ORDER BY n.i"
)
_BULK_CHUNK = 20_000
WORKERS = 2  # the sidecar's default --workers on a 2-core host


def _catalog(url: str, index_dir: str, in_process: bool = False) -> RateCatalog:
    """A rate catalog as a sidecar worker has it (``in_process``: no build child)."""
    return RateCatalog(
        lambda: connect_cli(url), database_url="" if in_process else url, index_dir=index_dir
    )


def load_index(url: str, plan_id: int, index_dir: str, in_process: bool = False) -> RateIndex:
    catalog = _catalog(url, index_dir, in_process)
    try:
        return catalog.index(plan_id)
    finally:
        catalog.stop()


def _ids(index: RateIndex, numbers: list[str], at: datetime) -> list[int | None]:
    # ids only, as the SQL side: a list of 200k live Rates would time the GC, not lookups
    lookup = index.lookup
    return [r.id if (r := lookup(n, at)) is not None else None for n in numbers]


def _smaps() -> dict[str, int]:
    return smaps_of("self")


def _worker(url: str, plan_id: int, index_dir: str, numbers_file: str, in_process: bool) -> None:
    """``python -m bench.lpm worker ...``: load the index as a sidecar worker does, touch
    it with every number, report, and stay alive until stdin closes."""
    import gc

    numbers = json.loads(Path(numbers_file).read_text(encoding="utf-8"))
    gc.collect()
    before = _smaps()
    started = time.perf_counter()
    index = load_index(url, plan_id, index_dir, in_process)
    load_s = time.perf_counter() - started
    _ids(index, numbers, datetime.now(UTC))
    gc.collect()
    peak = _peak_kib() - before["rss"]  # the most this process ever held over its start
    ready = {"before": before, "load_s": load_s, "rates": len(index), "peak": peak}
    print(json.dumps(ready), flush=True)
    sys.stdin.read()


def _peak_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def index_memory(url: str, plan_id: int, index_dir: str, numbers: list[str]) -> dict[str, Any]:
    """Per worker growth of USS / PSS / RSS (MiB) with ``WORKERS`` workers mapping the
    index together, and of one worker that built the index in-process instead."""
    numbers_file = Path(index_dir) / "numbers.json"
    numbers_file.write_text(json.dumps(numbers), encoding="utf-8")
    shared = _workers(url, plan_id, index_dir, str(numbers_file), WORKERS, False)
    with tempfile.TemporaryDirectory(prefix="apolo-bench-lpm-") as own:
        alone = _workers(url, plan_id, own, str(numbers_file), 1, True)[0]

    def mib(kib: int) -> float:
        return round(kib / 1024, 1)

    return {
        "workers": WORKERS,
        "uss_mib": mib(max(w["uss"] for w in shared)),
        "pss_mib": mib(max(w["pss"] for w in shared)),
        "rss_mib": mib(max(w["rss"] for w in shared)),
        "anonymous_mib": mib(max(w["anonymous"] for w in shared)),
        "map_s": round(max(w["load_s"] for w in shared), 4),
        "peak_mib": mib(max(w["peak"] for w in shared)),
        # alone: its file pages are its own (USS), its heap keeps what the build left
        "in_process_build_anonymous_mib": mib(alone["anonymous"]),
        "in_process_build_rss_mib": mib(alone["rss"]),
        "in_process_build_peak_mib": mib(alone["peak"]),
    }


def _workers(
    url: str, plan_id: int, index_dir: str, numbers_file: str, count: int, in_process: bool
) -> list[dict[str, Any]]:
    args = [url, str(plan_id), index_dir, numbers_file, "1" if in_process else "0"]
    command = [sys.executable, "-m", "bench.lpm", "worker", *args]
    procs = [
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for _ in range(count)
    ]
    figures = []
    try:
        for proc in procs:  # all of them loaded and alive: the PSS split is real
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline())
            figures.append(ready)
        for proc, fig in zip(procs, figures, strict=True):
            now = smaps_of(proc.pid)
            fig.update({k: now[k] - fig["before"][k] for k in ("uss", "pss", "rss", "anonymous")})
    finally:
        for proc in procs:
            proc.communicate(timeout=60)
    return figures


def _sql_lookups(url: str, plan_id: int, numbers: list[str], at: datetime) -> list[int | None]:
    found: list[int | None] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for number in numbers:
            candidates = [number[:n] for n in range(1, len(number) + 1)]
            row = conn.execute(_SQL_LPM, (plan_id, candidates, at, at)).fetchone()
            found.append(None if row is None else int(row[0]))
    return found


def _bulk_sql_lookups(url: str, plan_id: int, numbers: list[str], at: datetime) -> list[int | None]:
    found: list[int | None] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, len(numbers), _BULK_CHUNK):
            chunk = numbers[start : start + _BULK_CHUNK]
            rows = conn.execute(_SQL_LPM_BULK, (chunk, plan_id, at, at)).fetchall()
            found.extend(None if row[0] is None else int(row[0]) for row in rows)
    if len(found) != len(numbers):
        raise RuntimeError(f"bulk LPM answered {len(found)} of {len(numbers)} numbers")
    return found


def mismatches(index_ids: list[int | None], sql_ids: list[int | None]) -> int:
    """Disagreements between two answer lists of the same numbers; lists of different
    lengths are a bench bug, never a partial comparison."""
    if len(index_ids) != len(sql_ids):
        raise ValueError(f"comparing {len(index_ids)} answers with {len(sql_ids)}")
    return sum(1 for a, b in zip(index_ids, sql_ids, strict=True) if a != b)


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


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run(url: str, plan_id: int, numbers: list[str], sql_count: int) -> dict[str, Any]:
    at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="apolo-bench-lpm-") as index_dir:
        reload_s, index = _timed(lambda: load_index(url, plan_id, index_dir))
        map_s, _ = _timed(lambda: load_index(url, plan_id, index_dir))
        [file] = Path(index_dir).rglob("*.lpm")
        file_bytes = file.stat().st_size
        with tempfile.TemporaryDirectory(prefix="apolo-bench-lpm-") as other:
            in_process_s, _ = _timed(lambda: load_index(url, plan_id, other, in_process=True))

        index_s, index_ids = _best_of(ROUNDS, lambda: _ids(index, numbers, at))
        sql_numbers = numbers[:sql_count]
        sql_s, sql_ids = _best_of(ROUNDS, lambda: _sql_lookups(url, plan_id, sql_numbers, at))
        memory = index_memory(url, plan_id, index_dir, numbers)
    every_sql_id = _bulk_sql_lookups(url, plan_id, numbers, at)

    # every lookup the index answered, against SQL; and the timed per-call answers too
    wrong = mismatches(index_ids, every_sql_id)
    wrong += mismatches(index_ids[: len(sql_ids)], sql_ids)
    index_rate = len(numbers) / index_s
    sql_rate = len(sql_numbers) / sql_s
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
        "compared": len(every_sql_id),
        "mismatches": wrong,
        "reload_s": round(reload_s, 3),
        "reload_map_s": round(map_s, 4),
        "reload_in_process_s": round(in_process_s, 3),
        "index_file_mib": round(file_bytes / 1048576, 1),
        "index_workers": memory["workers"],
        "index_uss_mib": memory["uss_mib"],
        "index_pss_mib": memory["pss_mib"],
        "index_rss_mib": memory["rss_mib"],
        "index_rss_bytes_per_rate": round(memory["rss_mib"] * 1048576 / max(1, len(index)), 1),
        "index_anonymous_mib": memory["anonymous_mib"],
        "index_worker_map_s": memory["map_s"],
        "index_peak_mib": memory["peak_mib"],
        "index_in_process_build_anonymous_mib": memory["in_process_build_anonymous_mib"],
        "index_in_process_build_rss_mib": memory["in_process_build_rss_mib"],
        "index_in_process_build_peak_mib": memory["in_process_build_peak_mib"],
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        url_, plan_, dir_, numbers_, in_process_ = sys.argv[2:7]
        _worker(url_, int(plan_), dir_, numbers_, in_process_ == "1")
