"""The smoke benchmark runs end to end and its own consistency counts are exact.

Timings are printed by the bench, never asserted here: the machine is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from bench import lpm as lpm_bench


def test_smoke_bench_completes_with_exact_counts(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    test_db = os.environ.get("APOLO_TEST_DB", "apolo_test")
    env = {
        **os.environ,
        "APOLO_BENCH_DB": f"apolo_bench_smoke_{test_db}"[:63],
        "APOLO_BENCH_REDIS_DB": os.environ.get("APOLO_TEST_REDIS_DB", "15"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))

    size = result["size"]
    assert result["rate_import"]["stored"] == result["rate_import"]["rows"] == size["prefixes"]
    lpm = result["lpm"]
    assert lpm["rates"] == size["prefixes"] and lpm["mismatches"] == 0
    # every lookup the bench reports is compared with SQL, not a sample of them
    assert lpm["compared"] == lpm["lookups"] == size["lookups"]
    assert lpm["sql_lookups"] == size["sql_lookups"] and 0 < lpm["rated"] <= lpm["lookups"]
    for level in size["levels"]:
        run = result["authorize"][f"inflight_{level}"]
        assert run["requests"] == size["calls_per_level"] and run["statuses"] == {
            "200": size["calls_per_level"]
        }
        assert sum(run["reasons"].values()) == size["calls_per_level"]
    for level in size["levels"]:
        hook = result["fs_handler"][f"inflight_{level}"]
        assert sum(hook["results"].values()) == hook["requests"] > 0
        assert all(k.startswith(("authorized:", "denied:")) for k in hook["results"]), hook
    # the main sidecar's workers, measured from /proc after its load
    memory = result["sidecar_memory"]
    assert (
        memory["workers"] >= 1 and 0 < memory["uss_mib"] <= memory["pss_mib"] <= memory["rss_mib"]
    )
    assert "sidecar worker memory" in proc.stdout
    # the real switch (bench/e2e_switch.py, when it finds one): both ladders sustain the smoke rate
    switch = result["e2e_switch"]
    if "skipped" not in switch:
        assert switch["hook"]["sustained_calls_per_s"] == switch["no_billing"][
            "sustained_calls_per_s"] > 0, switch  # fmt: skip
    assert "real FreeSWITCH" in proc.stdout
    counts = result["consistency"]
    assert counts["exact"] is True and result["request_failures"] == 0
    assert counts["lpm_compared"] == counts["lpm_lookups"] and counts["lpm_mismatches"] == 0
    assert counts["cdrs_stored"] == counts["cdrs_posted_unique"] > 0
    assert counts["cdrs_charged"] == counts["charges_expected"] > 0
    # one ledger row per charge, a 0.0000 charge included
    assert counts["ledger_charges"] == counts["cdrs_charged"]
    assert 0 <= counts["cdrs_charged_zero_cost"] <= counts["cdrs_charged"]
    assert counts["accounts_balance_ne_ledger"] == 0 == counts["charges_wrong_amount"]
    assert counts["charged_ne_ledger_row"] == 0
    # the CDR export: every CDR of the table (the generated ones and the posted ones) once,
    # over HTTP and through COPY alike
    export = result["cdr_export"]
    assert export["generate"]["generated"] == size["export_cdrs"]
    on_switch = result["e2e_switch"].get("cdrs_stored", 0)  # the real switch's calls
    assert export["rows_expected"] == size["export_cdrs"] + counts["cdrs_stored"] + on_switch
    assert export["export"]["rows"] == export["rows_expected"] == export["floor_copy"]["rows"]
    assert counts["export_rows"] == counts["export_cdrs_in_table"] == export["rows_expected"]
    assert export["export"]["workers"] >= 1 and export["export"]["bytes"] > 0
    assert "figure" in proc.stdout and "consistency exact" in proc.stdout
    assert "CDR export" in proc.stdout


def test_text_reload_gives_the_same_answers_as_the_typed_rows(conn, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The reload path the rate catalog and the LPM bench use (``plan_snapshot_text``, by
    one value or by COPY, then saved and memory-mapped) answers exactly as ``from_rows``
    over the typed snapshot:
    priorities, windows (pre-1970, microseconds, open ends), fees, names with
    spaces/tabs/newlines/backslashes/non-ASCII, disabled rows, a timing in the plan's time
    zone, minimum charges and free seconds."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from sidecar.rating import RateIndex
    from sidecar.repo import rates as rates_repo

    plan = rates_repo.ensure_plan(conn, "equivalence")
    t0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    rows = [
        ("51", "Peru", "0.600000", 0, t0 - timedelta(days=400), None, 0, True),
        ("51", "Peru promo", "0.100000", 0, t0, t0 + timedelta(days=1), 5, True),
        ("519", "Perú mobile\tline\nbreak \\ back", "0.9", 3, t0, None, 0, True),
        ("5198", "old", "1.5", 0, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), 0, True),
        ("5198", "new", "1.25", 0, t0 + timedelta(hours=1), None, 0, True),
        ("5197", "disabled", "9.9", 0, t0 - timedelta(days=1), None, 0, False),
        ("1", "US  double  space", "0.010000", 0, t0 - timedelta(days=1), None, -2, True),
    ]  # fmt: skip
    for prefix, name, rpm, fee, start, end, priority, enabled in rows:
        rates_repo.add_rate(conn, plan, prefix=prefix, name=name, rate_per_minute=Decimal(rpm),
                            connection_fee=Decimal(fee), initial_increment=6, increment=6,
                            effective_start=start, effective_end=end, priority=priority,
                            enabled=enabled, minimum_charge=Decimal("0.05") if fee else 0,
                            free_seconds=fee)  # fmt: skip
    conn.execute("UPDATE rate_plans SET timezone = 'America/Lima' WHERE id = %s", (plan,))
    timing = conn.execute(
        "INSERT INTO timings (plan_id, name, weekdays, start_second, end_second)"
        " VALUES (%s, 'weekday-mornings', '{1,2,3,4,5}', 28800, 43200) RETURNING id",
        (plan,),
    ).fetchone()["id"]
    rates_repo.add_rate(conn, plan, prefix="51", name="mornings", rate_per_minute=Decimal("0.2"),
                        effective_start=t0 - timedelta(days=30), priority=9,
                        timing_id=timing)  # fmt: skip
    conn.commit()
    from sidecar.rating import PlanMeta

    with rates_repo.plan_snapshot(conn, plan) as (version, meta, typed_rows):
        typed = RateIndex.from_rows(typed_rows, version, PlanMeta.from_json(meta))
    with rates_repo.plan_snapshot_text(conn, plan) as (version_text, meta_text, blocks):
        text = RateIndex.from_text(blocks, version_text, PlanMeta.from_json(meta_text))
    with rates_repo.plan_snapshot_text(conn, plan, via_copy=True) as (_, meta_copy, blocks):
        copied = RateIndex.from_text(blocks, version_text, PlanMeta.from_json(meta_copy))
    text.save(tmp_path / "plan.lpm")
    mapped = RateIndex.load(tmp_path / "plan.lpm")

    assert version_text == version == mapped.version and len(text) == len(typed) == 7
    assert meta == meta_text == meta_copy and mapped.meta == typed.meta
    assert mapped.meta.timezone == "America/Lima" and mapped.timed
    instants = [
        t0 - timedelta(days=500), datetime(1970, 1, 1, tzinfo=UTC), t0 - timedelta(microseconds=1),
        t0, t0 + timedelta(minutes=30), t0 + timedelta(hours=2), t0 + timedelta(days=2),
        t0 + timedelta(hours=1),  # Wed 08:00 in Lima: the mornings timing starts
    ]  # fmt: skip
    numbers = ["51123", "519000", "5198777", "5197111", "1555", "+1 (555)", "44", ""]
    answers = [(typed.lookup(n, at), text.lookup(n, at)) for n in numbers for at in instants]
    assert all(a == b for a, b in answers), [(a, b) for a, b in answers if a != b]
    for other in (mapped, copied):
        assert [other.lookup(n, at) for n in numbers for at in instants] == [a for a, _ in answers]
    rated = [a for a, _ in answers if a is not None]
    assert {r.name for r in rated} >= {"Peru", "Peru promo", "new", "US  double  space",
                                       "mornings"}  # fmt: skip
    odd = {(r.minimum_charge, r.free_seconds) for r in rated if r.prefix == "519"}
    assert odd == {(Decimal("0.050000"), 3)}
    assert any("\t" in r.name and "\\" in r.name for r in rated)


def _bench_out(hook_results: dict[str, int], lpm: dict[str, int]) -> dict[str, Any]:
    """The parts of a bench result ``bench.run._failures`` and ``checks.is_exact`` read."""
    ok = {"errors": 0, "statuses": {"200": 10}}
    return {
        "authorize": {"inflight_5": ok},
        "cdr_ingest": ok,
        "busy_hour": {"authorize": ok, "cdr": ok},
        "busy_hour_split": {"authorize": ok, "cdr": ok},
        "replay": {"exit_code": 0, "files_left": 0},
        "fs_handler": {"inflight_5": {"results": hook_results}},
        "lpm": lpm,
    }


def test_a_hook_error_or_an_unchecked_lookup_fails_the_bench() -> None:
    """The bench's exit code counts what its table reports: an error of the mod_python3 hook
    row is a request failure, and LPM answers not all compared with SQL are not exact."""
    from bench import checks, run

    good_lpm = {"lookups": 100, "compared": 100, "mismatches": 0}
    fine = _bench_out({"authorized:ok": 9, "denied:no_rate": 1}, good_lpm)
    assert run._failures(fine) == 0
    for bad in ({"authorized:ok": 9, "error:": 1}, {"authorized:ok": 9, "None:None": 2}):
        assert run._failures(_bench_out(bad, good_lpm)) == sum(bad.values()) - 9
    exact = {"cdrs_lost": 0, "cdrs_duplicated": 0, "cdrs_stored": 1, "cdrs_posted_unique": 1,
             "cdrs_charged": 1, "charges_expected": 1, "ledger_charges": 1,
             "charged_ne_ledger_row": 0, "max_charges_per_cdr": 1, "charges_wrong_amount": 0,
             "accounts_balance_ne_ledger": 0, "accounts_reserved_ne_open": 0}  # fmt: skip
    assert checks.is_exact({**exact, **checks.lpm_agreement(good_lpm)})
    for lpm in ({**good_lpm, "compared": 5}, {**good_lpm, "mismatches": 1}):
        assert not checks.is_exact({**exact, **checks.lpm_agreement(lpm)})
    with pytest.raises(ValueError):
        lpm_bench.mismatches([1, 2, None], [1, 2])
