"""``apolo plans``, ``apolo timings``, ``apolo numbers`` and the rate CSV's new columns,
as an operator runs them against the real test database."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from test_cli import apolo

pytestmark = pytest.mark.integration


def _rows(db_url: str, sql: str) -> list[dict[str, object]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        return c.execute(sql).fetchall()


def test_plans_timings_and_rates_from_the_cli(db_url, clean, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = json.loads(
        apolo(db_url, "plans", "create", "BASE", "--tz", "America/Mexico_City").stdout
    )
    assert base["timezone"] == "America/Mexico_City" and base["parent"] is None
    child = json.loads(apolo(db_url, "plans", "create", "P", "--parent", "BASE").stdout)
    assert child["parent"] == "BASE"
    cycle = apolo(db_url, "plans", "set", "BASE", "--parent", "P", check=False)
    assert cycle.returncode == 1 and "cycle" in cycle.stderr
    assert apolo(db_url, "plans", "create", "Z", "--tz", "Nowhere/City", check=False).returncode
    apolo(db_url, "timings", "create", "peak", "--plan", "BASE", "--days", "mon-fri",
          "--from", "08:00", "--to", "20:00")  # fmt: skip
    apolo(db_url, "timings", "create", "holidays", "--plan", "BASE",
          "--dates", "2026-12-25,2027-01-01")  # fmt: skip
    listed = json.loads(apolo(db_url, "timings", "list", "--plan", "BASE").stdout)
    assert [(t["name"], t["days"], t["dates"]) for t in listed] == [
        ("holidays", "", ["2026-12-25", "2027-01-01"]), ("peak", "mon-fri", []),
    ]  # fmt: skip
    csv = tmp_path / "rates.csv"
    csv.write_text("prefix,rate_per_minute,timing,priority,minimum_charge,free_seconds\n"
                   "52,0.10,peak,1,0.5,3\n52,0.04,,0,,\n52,0.01,holidays,10,,\n")  # fmt: skip
    apolo(db_url, "rates", "import", "--plan", "BASE", str(csv))
    exported = apolo(db_url, "rates", "export", "--plan", "BASE").stdout.splitlines()
    assert exported[0].endswith(",timing,minimum_charge,free_seconds")
    assert sorted(line.split(",")[-3] for line in exported[1:]) == ["", "holidays", "peak"]
    in_use = apolo(db_url, "timings", "delete", "peak", "--plan", "BASE", check=False)
    assert in_use.returncode == 1 and "rate(s)" in in_use.stderr
    apolo(db_url, "plans", "set", "P", "--no-parent")
    assert _rows(db_url, "SELECT parent_id FROM rate_plans WHERE name = 'P'") == [
        {"parent_id": None}
    ]
    actions = {r["action"] for r in _rows(db_url, "SELECT action FROM audit_log")}
    assert {"rate_plan.create", "rate_plan.update", "timing.create", "rates.import"} <= actions


def test_number_rules_from_the_cli(db_url, clean) -> None:  # type: ignore[no-untyped-def]
    apolo(db_url, "plans", "create", "MX")
    apolo(db_url, "numbers", "add", "--switch", "fs-mx", "--add", "52", "--min", "10",
          "--max", "10")  # fmt: skip
    apolo(db_url, "numbers", "add", "--cucm-cluster", "C1", "--strip", "9011")
    apolo(db_url, "numbers", "add", "--cucm-cluster", "C1", "--caller", "--strip", "+")
    apolo(db_url, "numbers", "add", "--cucm-cluster", "C1", "--caller", "--add", "1",
          "--min", "10", "--max", "10")  # fmt: skip
    tried = json.loads(apolo(db_url, "numbers", "test", "5512345678", "--switch", "fs-mx").stdout)
    assert tried["normalized"] == "525512345678"
    cucm = json.loads(apolo(db_url, "numbers", "test", "9011442079460000",
                            "--cucm-cluster", "C1").stdout)  # fmt: skip
    assert cucm["normalized"] == "442079460000"
    caller = json.loads(apolo(db_url, "numbers", "test", "+15034401001", "--cucm-cluster", "C1",
                              "--caller").stdout)  # fmt: skip
    assert caller["normalized"] == "15034401001" and "5034401001" in caller["account_matching"]
    rules = json.loads(apolo(db_url, "numbers", "list", "--cucm-cluster", "C1").stdout)
    assert [(r["direction"], r["position"]) for r in rules] == [
        ("callee", 0), ("caller", 0), ("caller", 1),
    ]  # fmt: skip
    bad = apolo(db_url, "numbers", "add", "--switch", "x", "--strip", "9a", check=False)
    assert bad.returncode == 1 and "strip" in bad.stderr
    apolo(db_url, "numbers", "delete", str(rules[0]["id"]))
    assert len(json.loads(apolo(db_url, "numbers", "list").stdout)) == 3
