"""Legacy zone-model import: through the API and through ``apolo rates import-legacy``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from reporting_helpers import bearer, query, with_reporting

from sidecar.cli.reports_cmd import import_legacy

LEGACY = {
    "zones": [
        {"id": 1, "zone_name": "Peru", "description": "Lima"},
        {"id": 2, "zone_name": "Chile", "description": ""},
    ],
    "prefixes": [
        {"zone_id": 1, "prefix": "511", "enabled": True},
        {"zone_id": 2, "prefix": "56", "enabled": True},
        {"zone_id": 2, "prefix": "562", "enabled": False},
    ],
    "rate_zones": [
        {"zone_id": 1, "rate_per_second": "0.0025", "billing_increment": 1, "priority": 0},
        {"zone_id": 2, "rate_per_second": "0.00125", "billing_increment": 30},
    ],
    "effective_start": "2024-01-01T00:00:00Z",
}


def plan_rates(url: str, plan: str) -> list[tuple[str, str, Decimal, int]]:
    rows = query(
        url,
        "SELECT r.prefix, r.name, r.rate_per_minute, r.increment FROM rates r"
        " JOIN rate_plans p ON p.id = r.plan_id WHERE p.name = %s ORDER BY r.prefix",
        plan,
    )
    return [(r["prefix"], r["name"], r["rate_per_minute"], r["increment"]) for r in rows]


@pytest.fixture
def api(app, seed):  # type: ignore[no-untyped-def]
    return with_reporting(app)


def test_api_imports_legacy_tables_into_a_plan(api, seed) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token())
    resp = api.post("/v1/rate-plans/legacy/import-legacy", json=LEGACY, headers=admin)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["imported"] == 2
    assert plan_rates(seed.url, "legacy") == [
        ("511", "Peru - Lima", Decimal("0.15"), 1),
        ("56", "Chile", Decimal("0.075"), 30),
    ]
    audit = query(seed.url, "SELECT after FROM audit_log WHERE action = 'rates.import'")
    assert audit[0]["after"]["source"] == "legacy zones"


def test_api_legacy_errors_import_nothing(api, seed) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(seed.token())
    bad = {**LEGACY, "rate_zones": [{"zone_id": 1, "rate_per_second": "0.00000001"}]}
    resp = api.post("/v1/rate-plans/legacy/import-legacy", json=bad, headers=admin)
    assert resp.status_code == 422
    errors = resp.get_json()["error"]["details"]["errors"]
    assert [(e["table"], e["line"], e["field"]) for e in errors] == [
        ("rate_zones", 2, "rate_per_second")
    ]
    assert plan_rates(seed.url, "legacy") == []
    resp = api.post("/v1/rate-plans/legacy/import-legacy", json={"zones": "x"}, headers=admin)
    assert resp.status_code == 400
    viewer = bearer(seed.token("viewer"))
    resp = api.post("/v1/rate-plans/legacy/import-legacy", json=LEGACY, headers=viewer)
    assert resp.status_code == 403


def test_cli_import_legacy_from_csv_files(seed, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", seed.url)
    (tmp_path / "z.csv").write_text("id,zone_name,zone_code,description\n1,Peru,PE,Lima\n")
    (tmp_path / "p.csv").write_text("id,zone_id,prefix,prefix_length\n7,1,511,3\n8,1,519,3\n")
    (tmp_path / "r.csv").write_text("id,zone_id,rate_per_minute,billing_increment\n1,1,0.002,6\n")
    args = ["--plan", "old", "--zones", str(tmp_path / "z.csv"), "--prefixes",
            str(tmp_path / "p.csv"), "--rate-zones", str(tmp_path / "r.csv")]  # fmt: skip
    result = CliRunner().invoke(import_legacy, args)
    assert result.exit_code == 0, result.output
    assert plan_rates(seed.url, "old") == [
        ("511", "Peru - Lima", Decimal("0.12"), 6),
        ("519", "Peru - Lima", Decimal("0.12"), 6),
    ]
    # a bad file imports nothing, and --replace deletes nothing
    (tmp_path / "r.csv").write_text("zone_id,rate_per_second\n1,abc\n")
    result = CliRunner().invoke(import_legacy, [*args[:2], "--replace", *args[2:]])
    assert result.exit_code == 1
    assert "rate_zones line 2: rate_per_second" in result.output
    assert len(plan_rates(seed.url, "old")) == 2
