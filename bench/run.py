"""Run every Apolo benchmark, print a table and write a JSON file.

    python -m bench.run            # full: 1,000,000 prefixes, 50/200/500 calls in flight
    python -m bench.run --smoke    # seconds, small data: proves the bench still works

Needs DATABASE_URL / REDIS_URL (``eval "$(scripts/services.sh)"``). It recreates its own
database (``--db``, default ``apolo_bench``) and flushes its own Redis database
(``--redis-db``, default 13); it never touches ``apolo`` or the test databases. Exit code
1 when any consistency count is off or any request failed; timings never fail a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis as redis_lib

from bench import (
    authorize,
    cdr_export,
    cdr_ingest,
    checks,
    data,
    e2e_switch,
    lpm,
    mixed,
    rate_import,
    replay,
)
from bench.procs import ROOT, Server, fs_handler, start_bare_wsgi, start_sidecar, worker_memory

PLAN = "bench"


@dataclass(frozen=True)
class Size:
    prefixes: int
    lookups: int
    sql_lookups: int
    accounts: int
    levels: tuple[int, ...]
    calls_per_level: int
    max_seconds: float
    cdr_concurrency: int
    mixed_rate: float
    mixed_seconds: float
    pg_round_trips: int
    export_cdrs: int = 1_000_000  # CDRs generated for the CSV export figure


FULL = Size(1_000_000, 200_000, 5_000, 1_000, (50, 200, 500), 15_000, 30.0, 50, 300.0, 20.0, 5_000)
SMOKE = Size(2_000, 2_000, 200, 20, (5, 20), 150, 10.0, 8, 50.0, 2.0, 200, export_cdrs=2_000)


def _redis_url(server: str, index: int) -> str:
    if index == 0:
        raise ValueError("refusing to flush Redis database 0 (the sidecar's default)")
    base = server.rsplit("/", 1)[0] if server.count("/") > 2 else server
    return f"{base}/{index}"


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def run(size: Size, db_name: str, redis_db: int, seed: int, smoke: bool = False) -> dict[str, Any]:
    server_db = os.environ["DATABASE_URL"]
    redis_url = _redis_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), redis_db)
    redis_lib.Redis.from_url(redis_url).flushdb()
    url = data.fresh_database(server_db, db_name)
    out: dict[str, Any] = {"machine": _machine(), "size": size.__dict__, "seed": seed}

    prefixes = data.prefixes(size.prefixes, seed)
    numbers = data.call_numbers(max(size.lookups, size.calls_per_level), prefixes, seed)
    with tempfile.TemporaryDirectory(prefix="apolo-bench-") as tmp:
        csv_path = Path(tmp) / "rates.csv"
        data.write_rate_csv(csv_path, prefixes)
        out["rate_import"] = rate_import.run(url, PLAN, csv_path, len(prefixes))
    plan_id = out["rate_import"]["plan_id"]
    out["lpm"] = lpm.run(url, plan_id, numbers[: size.lookups], size.sql_lookups)

    accounts = data.account_numbers(size.accounts)
    data.create_accounts(url, PLAN, accounts, Decimal("100000000"))
    auth = ("freeswitch", secrets.token_urlsafe(24))
    out["floor_pg_round_trip"] = authorize.pg_round_trip(url, size.pg_round_trips)
    with start_sidecar(url, redis_url, auth) as sidecar, start_bare_wsgi() as bare:
        authorize.warm_up(sidecar, auth, authorize.make_calls(64, accounts, numbers, 10**6))
        sat = authorize.saturation(
            sidecar,
            bare,
            auth,
            accounts,
            numbers,
            size.levels,
            size.calls_per_level,
            size.max_seconds,
        )
        out["authorize"] = sat.figures
        out["fs_handler"] = _fs_handler(sidecar, auth, accounts, numbers, size)
        delivered = cdr_ingest.Delivered()
        cut = size.calls_per_level  # calls of the first level(s) get their CDR here
        ingest_batch = cdr_ingest.build_batch(sat.calls[:cut], 0.05, seed)
        out["cdr_ingest"] = cdr_ingest.saturation(
            sidecar, bare, auth, ingest_batch, size.cdr_concurrency, 3 * size.max_seconds,
            delivered,
        )  # fmt: skip
        mixed_count = int(size.mixed_rate * size.mixed_seconds)
        mixed_batch = cdr_ingest.build_batch(sat.calls[cut : cut + mixed_count], 0.0, seed + 1)
        mixed_calls = authorize.make_calls(mixed_count, accounts, numbers, 2 * 10**6)
        out["busy_hour"] = mixed.run(
            sidecar, auth, mixed_calls, mixed_batch, size.mixed_rate, size.mixed_seconds,
            delivered,
        )  # fmt: skip
        split = sat.calls[cut + mixed_count : cut + 2 * mixed_count]
        split_batch = cdr_ingest.build_batch(split, 0.0, seed + 2)
        split_calls = authorize.make_calls(mixed_count, accounts, numbers, 5 * 10**6)
        with start_sidecar(url, redis_url, auth, workers=1, nice=10) as cdr_sidecar:
            out["busy_hour_split"] = mixed.run(
                sidecar, auth, split_calls, split_batch, size.mixed_rate, size.mixed_seconds,
                delivered, cdr_sidecar,
            )  # fmt: skip
        # the main sidecar's workers after all of its load (the 1M-rate index mapped)
        out["sidecar_memory"] = worker_memory(sidecar.proc.pid)
        # an err-log-dir backlog after an outage: 2 calls per level's worth, 5% already stored
        backlog = 2 * size.calls_per_level
        stored = [(ingest_batch.meta[n][0], ingest_batch.requests[n][2])
                  for n in range(backlog // 20)]  # fmt: skip
    rated = [c.callee for c in sat.calls if c.authorized]  # every replayed call is charged
    # the real switch, with and without the hook, on its own sidecar (the others stopped)
    out["e2e_switch"] = e2e_switch.run(url, redis_url, auth, PLAN, rated[0], smoke)
    out["replay"] = replay.run(url, redis_url, accounts, rated, backlog, stored, delivered)
    # last timed phase (its million rows and their checkpoints would weigh on any after it),
    # before the counts, which then show that it moved no money and touched no posted CDR
    out["cdr_export"] = cdr_export.run(url, redis_url, auth, size.export_cdrs)
    out["consistency"] = checks.consistency(url, delivered.uuids, len(delivered.charged_uuids))
    out["consistency"].update(checks.export_rows(out["cdr_export"]))
    out["consistency"].update(checks.lpm_agreement(out["lpm"]))
    out["consistency"]["exact"] = checks.is_exact(out["consistency"])
    out["request_failures"] = _failures(out)
    out["requests_unsent_at_time_bound"] = sum(
        r["unsent"] for r in [*out["authorize"].values(), out["cdr_ingest"],
                              out["busy_hour"]["authorize"], out["busy_hour"]["cdr"],
                              out["busy_hour_split"]["authorize"], out["busy_hour_split"]["cdr"]]
    )  # fmt: skip
    return out


def _fs_handler(
    sidecar: Server, auth: tuple[str, str], accounts: list[str], numbers: list[str], size: Size
) -> dict[str, Any]:
    """The mod_python3 hook path at the same in-flight levels as the HTTP load."""
    figures = {}
    for n, level in enumerate(size.levels):
        calls = authorize.make_calls(size.calls_per_level // 2, accounts, numbers, (3 + n) * 10**6)
        spec = {"url": sidecar.url, "user": auth[0], "password": auth[1],
                "concurrency": level, "max_seconds": size.max_seconds,
                "calls": [[c.uuid, c.caller, c.callee] for c in calls]}  # fmt: skip
        figures[f"inflight_{level}"] = fs_handler(spec, timeout=size.max_seconds + 120)
    return figures


def hook_errors(figures: dict[str, Any]) -> int:
    """Calls of one mod_python3 hook run that ended neither authorized nor denied: an
    ``error`` result (the sidecar failed, timed out or answered garbage) or none at all."""
    return sum(n for key, n in figures["results"].items() if not key.startswith(_HOOK_OK))


_HOOK_OK = ("authorized:", "denied:")


def _failures(out: dict[str, Any]) -> int:
    runs = [
        *out["authorize"].values(),
        out["cdr_ingest"],
        out["busy_hour"]["authorize"],
        out["busy_hour"]["cdr"],
        out["busy_hour_split"]["authorize"],
        out["busy_hour_split"]["cdr"],
    ]
    bad = 0
    bad += 0 if out["replay"]["exit_code"] == 0 and not out["replay"]["files_left"] else 1
    for r in runs:  # requests left unsent at the time bound are not failures (see "unsent")
        bad += r["errors"]
        bad += sum(n for status, n in r["statuses"].items() if status != "200")
    bad += sum(hook_errors(r) for r in out["fs_handler"].values())
    return bad


def _busy_rows(
    rows: list[tuple[str, str, str, str]], label: str, b: dict[str, Any], pg: dict[str, Any]
) -> None:
    for kind in ("authorize", "cdr"):
        r = b[kind]
        rows.append(
            (
                f"{label} {b['rate']:.0f}/s {kind} p50/p99/max ms",
                f"{r['p50_ms']}/{r['p99_ms']}/{r['max_ms']}",
                f"PG RTT {pg['p50_us']} us",
                f"{round(r['p99_ms'] * 1000 / pg['p50_us'])}x",
            )
        )


def table(out: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    imp, ix = out["rate_import"], out["lpm"]
    rows.append(
        (
            f"rate import {imp['rows']:,} rows",
            f"{imp['import_s']} s",
            f"COPY {imp['copy_floor_s']} s",
            f"{imp['ratio_to_copy_floor']}x",
        )
    )
    rows.append(
        (
            "LPM lookups/s (index)",
            f"{ix['index_lookups_per_s']:,}",
            f"SQL {ix['sql_lookups_per_s']:,}/s",
            f"{ix['ratio_index_vs_sql']}x",
        )
    )
    rows.append(
        (
            "LPM answers index vs SQL compared/mismatched",
            f"{ix['compared']:,}/{ix['mismatches']}",
            f"of {ix['lookups']:,} lookups; {ix['sql_lookups']:,} timed per call",
            "",
        )
    )
    rows.append(
        (
            "LPM index reload (build, save, map)",
            f"{ix['reload_s']} s",
            f"{ix['rates']:,} rates; other workers map it in {ix['reload_map_s']} s",
            "",
        )
    )
    rows.append(
        (
            f"LPM index memory per worker ({ix['index_workers']} workers, PSS)",
            f"{ix['index_pss_mib']} MiB",
            f"USS {ix['index_uss_mib']}, RSS {ix['index_rss_mib']}; file {ix['index_file_mib']}",
            "",
        )
    )
    pg = out["floor_pg_round_trip"]
    for name, r in out["authorize"].items():
        f = r["floor_http"]
        rows.append(
            (
                f"authorize {name} /s",
                f"{r['per_second']:,}",
                f"bare {f['per_second']:,}/s",
                f"{r['ratio_throughput_to_floor']}",
            )
        )
        rows.append(
            (
                f"authorize {name} p50/p95/p99/max ms",
                f"{r['p50_ms']}/{r['p95_ms']}/{r['p99_ms']}/{r['max_ms']}",
                f"bare p50 {f['p50_ms']}",
                f"{r['ratio_p50_to_floor']}x",
            )
        )
    for name, r in out["fs_handler"].items():
        bad = hook_errors(r)
        rows.append(
            (
                f"mod_python3 hook {name} /s; p50/p99/max ms",
                f"{r['per_second']:,}; {r['p50_ms']}/{r['p99_ms']}/{r['max_ms']}",
                f"HTTP {out['authorize'][name]['per_second']:,}/s",
                f"{round(r['per_second'] / out['authorize'][name]['per_second'], 2)}",
            )
        )
        rows.append((f"mod_python3 hook {name} errors", str(bad), "", ""))
    c = out["cdr_ingest"]
    rows.append(
        (
            "CDR posts/s",
            f"{c['per_second']:,}",
            f"bare {c['floor_http']['per_second']:,}/s",
            f"{c['ratio_throughput_to_floor']}",
        )
    )
    rows.append(("CDR p50/p99 ms", f"{c['p50_ms']}/{c['p99_ms']}", "", ""))
    for key, label in (("busy_hour", "busy hour"), ("busy_hour_split", "busy hour, CDRs split")):
        _busy_rows(rows, label, out[key], pg)
    rp = out["replay"]
    rows.append(
        (
            f"err-log-dir replay {rp['files']:,} files (--direct)",
            f"{rp['per_second']:,}/s",
            f"parse only {rp['parse_floor_per_second']:,}/s",
            f"{rp['ratio_to_parse_floor']}",
        )
    )
    m, index_pss = out["sidecar_memory"], out["lpm"]["index_pss_mib"]
    rows.append(
        (
            f"sidecar worker memory after the load ({m['workers']} workers, max)",
            f"PSS {m['pss_mib']} MiB",
            f"USS {m['uss_mib']}, RSS {m['rss_mib']} MiB; the index's share {index_pss}",
            "",
        )
    )
    rows.extend(_e2e_rows(out["e2e_switch"]))
    rows.extend(_cdr_export_rows(out["cdr_export"]))
    k = out["consistency"]
    rows.append(
        (
            "CDRs posted/stored/lost/dup",
            f"{k['cdrs_posted_unique']}/{k['cdrs_stored']}/{k['cdrs_lost']}/{k['cdrs_duplicated']}",
            "",
            "",
        )
    )
    rows.append(
        (
            "charges expected/charged/ledger/zero-cost/wrong",
            f"{k['charges_expected']}/{k['cdrs_charged']}/{k['ledger_charges']}/"
            f"{k['cdrs_charged_zero_cost']}/{k['charges_wrong_amount']}",
            "",
            "",
        )
    )
    rows.append(("accounts balance != ledger", str(k["accounts_balance_ne_ledger"]), "", ""))
    rows.append(
        (
            "consistency exact / request failures / unsent",
            f"{k['exact']} / {out['request_failures']} / {out['requests_unsent_at_time_bound']}",
            "",
            "",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("figure", "value", "baseline / floor", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _e2e_rows(e: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    if "skipped" in e:
        return [("real FreeSWITCH, calls/s through the hook", "skipped", e["skipped"][:60], "")]
    hook, bare = e["hook"], e["no_billing"]

    def rate(ladder: dict[str, Any]) -> str:
        return f"{'>= ' if ladder['top_of_ladder'] else ''}{ladder['sustained_calls_per_s']}"

    return [(
        f"real FreeSWITCH calls/s, < 1% failed ({e['hold_ms'] // 1000} s calls)",
        f"{rate(hook)} through the hook",
        f"same switch, no billing: {rate(bare)}",
        f"{e['ratio']}",
    )]  # fmt: skip


def _cdr_export_rows(x: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    e, f = x["export"], x["floor_copy"]
    return [
        (f"CDR export {e['rows']:,} rows (CSV over HTTP) s", f"{e['seconds']}",
         f"COPY {f['seconds']} s", f"{x['ratio_to_copy_floor']}x"),
        ("CDR export rows/s; first byte ms", f"{e['rows_per_s']:,}; {e['first_byte_ms']}",
         f"COPY {f['rows_per_s']:,}/s", ""),
        ("CDR export worker peak RSS growth", f"{e['rss_growth_mib']} MiB",
         f"RSS before {max(e['worker_rss_before_mib'])} MiB", ""),
        ("CDR export rows in table/exported/COPY",
         f"{x['rows_expected']}/{e['rows']}/{f['rows']}", "", ""),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small data, a few seconds")
    parser.add_argument("--db", default=os.environ.get("APOLO_BENCH_DB", "apolo_bench"))
    parser.add_argument(
        "--redis-db", type=int, default=int(os.environ.get("APOLO_BENCH_REDIS_DB", "13"))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("APOLO_BENCH_SEED", "1")))
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file [default: .data/bench/results[-smoke].json]",
    )
    args = parser.parse_args(argv)
    if "DATABASE_URL" not in os.environ:
        print('DATABASE_URL is not set: eval "$(scripts/services.sh)" first', file=sys.stderr)
        return 2
    started = time.monotonic()
    out = run(SMOKE if args.smoke else FULL, args.db, args.redis_db, args.seed, args.smoke)
    out["wall_s"] = round(time.monotonic() - started, 1)
    path = args.out or ROOT / ".data" / "bench" / f"results{'-smoke' if args.smoke else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(table(out))
    print(
        f"\nmachine: {out['machine']['cpus']} x {out['machine']['cpu']}; "
        f"wall {out['wall_s']} s; JSON: {path}"
    )
    return 0 if out["consistency"]["exact"] and out["request_failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
