"""`apolo rates import/export` against a real PostgreSQL.

Runs on the migrated test database of ``tests/conftest.py`` (fixture ``db_url``).
Every test works on plans of its own (random names) and deletes them afterwards.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from sidecar.cli.rates_cmd import rates
from sidecar.imports.rates_csv import FIELDS, RateRow, iter_rate_rows
from sidecar.repo.rate_import import (
    DuplicateRatesError,
    PlanNotFoundError,
    copy_rates,
    stream_plan_rates,
)

pytestmark = pytest.mark.integration


def write_big_csv(path: Path, rows: int, seed: int = 20250301) -> None:
    """A valid rate CSV of ``rows`` random rates: prefixes of 1-12 digits, a few
    dated and disabled rows; a repeated prefix gets the next priority so that no two
    rows share (prefix, effective_start, priority)."""
    rng = random.Random(seed)
    used: dict[str, int] = {}
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(FIELDS[:10]) + "\n")  # the columns before timings
        for n in range(rows):
            prefix = "".join(rng.choices("0123456789", k=rng.randint(1, 12)))
            priority = used.get(prefix, 0)
            used[prefix] = priority + 1
            rate = f"{rng.randrange(0, 10**8) / 10**6:.6f}"
            fee = "" if rng.random() < 0.8 else f"0.{rng.randrange(10**4):04d}"
            increment = rng.choice(["", "1", "6", "30", "60"])
            start, end = ("", "") if rng.random() < 0.9 else ("2024-01-01", "2030-01-01T00:00:00Z")
            enabled = "false" if rng.random() < 0.02 else ""
            out.write(
                f"{prefix},Destination {n},{rate},{fee},,{increment},{start},{end},"
                f"{priority},{enabled}\n"
            )


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def plans(conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """Unique plan names for the test; their plans are deleted afterwards."""
    names = [f"test-rates-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    yield names
    conn.execute("DELETE FROM rate_plans WHERE name = ANY(%s)", (names,))
    conn.execute(
        "DELETE FROM audit_log WHERE target = ANY(%s)", ([f"rate_plan:{n}" for n in names],)
    )


@pytest.fixture
def cli(db_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(rates, list(args), env={"DATABASE_URL": db_url})

    return invoke


def write(tmp_path: Path, text: str, name: str = "rates.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def plan_rates(conn: psycopg.Connection[Any], plan: str) -> list[RateRow]:
    with conn.transaction():
        return list(stream_plan_rates(conn, plan))


def plan_info(conn: psycopg.Connection[Any], plan: str) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT version, currency FROM rate_plans WHERE name = %s", (plan,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


GOOD = (
    "prefix,name,rate_per_minute,connection_fee,initial_increment,increment,effective_end\n"
    "+44,UK,0.015,0.1,30,6,\n"
    "4420,London,0.012345,,,,2030-01-01T00:00:00Z\n"
    "1,US & Canada,0.000001,,,1,\n"
)


def test_import_creates_the_plan_with_exact_values(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    plan = plans[0]
    before = datetime.now(UTC)
    result = cli("import", "--plan", plan, str(write(tmp_path, GOOD)))
    assert result.exit_code == 0, result.output
    assert f"imported 3 rates into plan '{plan}'" in result.stdout
    assert plan_info(conn, plan) == (2, "USD")  # created at 1, one import
    rows = {r.prefix: r for r in plan_rates(conn, plan)}
    assert set(rows) == {"44", "4420", "1"}
    uk = rows["44"]
    assert (uk.rate_per_minute, uk.connection_fee) == (Decimal("0.015"), Decimal("0.1"))
    assert type(uk.rate_per_minute) is Decimal
    assert (uk.initial_increment, uk.increment, uk.priority, uk.enabled) == (30, 6, 0, True)
    assert rows["4420"].rate_per_minute == Decimal("0.012345")
    assert (rows["4420"].initial_increment, rows["4420"].increment) == (60, 60)
    assert rows["4420"].effective_end == datetime(2030, 1, 1, tzinfo=UTC)
    assert rows["1"].rate_per_minute == Decimal("0.000001")
    starts = {r.effective_start for r in rows.values()}
    assert len(starts) == 1 and before <= starts.pop() <= datetime.now(UTC)


def test_currency_of_a_new_plan_and_a_mismatch(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    path = write(tmp_path, GOOD)
    assert cli("import", "--plan", plans[0], "--currency", "eur", str(path)).exit_code == 0
    assert plan_info(conn, plans[0]) == (2, "EUR")
    result = cli("import", "--plan", plans[0], "--currency", "USD", str(path))
    assert result.exit_code == 1
    assert "is in EUR, not USD" in result.stderr
    assert plan_info(conn, plans[0]) == (2, "EUR")
    assert len(plan_rates(conn, plans[0])) == 3


BAD = (
    "prefix,name,rate_per_minute,increment,effective_start\n"
    "33,France,0.02,60,\n"
    "3x,Bad prefix,0.02,60,\n"
    "34,Spain,1e3,60,\n"
    "\n"
    "35,Neg,-0.5,0,\n"
    "36,Ok,0.02,60,2025-01-01\n"
    "36,Same start,0.03,60,2025-01-01T02:00:00+02:00\n"
)


@pytest.mark.parametrize("replace", [False, True])
def test_a_bad_file_imports_nothing(
    cli: Any,
    conn: psycopg.Connection[Any],
    plans: list[str],
    tmp_path: Path,
    replace: bool,
) -> None:
    plan = plans[0]
    assert cli("import", "--plan", plan, str(write(tmp_path, GOOD))).exit_code == 0
    before = plan_rates(conn, plan)
    args = ["import", "--plan", plan, str(write(tmp_path, BAD, "bad.csv"))]
    result = cli(*args, *(["--replace"] if replace else []))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "line 3: prefix: '3x' must be digits 0-9 only (one leading + is allowed)",
        "line 4: rate_per_minute: '1e3' is not a plain decimal number such as 0.015",
        "line 6: rate_per_minute: '-0.5' must not be negative",
        "line 6: increment: must be at least 1 second",
        "line 8: prefix: same prefix, effective_start, priority and timing as line 7",
        f"{tmp_path / 'bad.csv'}: 5 error(s); nothing was imported",
    ]
    assert plan_rates(conn, plan) == before
    assert plan_info(conn, plan) == (2, "USD")


def test_a_bad_file_does_not_create_the_plan(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    result = cli("import", "--plan", plans[0], str(write(tmp_path, BAD)))
    assert result.exit_code == 1
    assert plan_info(conn, plans[0]) is None


def test_errors_past_the_limit_are_counted(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    body = "".join(f"{n},x\n" for n in range(250)) + "1,1\n1,1\n"
    result = cli(
        "import", "--plan", plans[0], str(write(tmp_path, "prefix,rate_per_minute\n" + body))
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 102
    assert lines[0].startswith("line 2: rate_per_minute:")
    assert lines[-2] == "... and 151 more error(s) not listed"
    assert lines[-1].endswith(": 251 error(s); nothing was imported")


def test_replace(cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path) -> None:
    plan = plans[0]
    assert cli("import", "--plan", plan, str(write(tmp_path, GOOD))).exit_code == 0
    assert cli("import", "--plan", plan, str(write(tmp_path, GOOD))).exit_code == 0
    assert len(plan_rates(conn, plan)) == 6  # append is the default
    path = write(tmp_path, "prefix,rate_per_minute\n49,0.07\n", "de.csv")
    result = cli("import", "--plan", plan, "--replace", str(path))
    assert result.exit_code == 0, result.output
    assert "(replaced its rates)" in result.stdout
    assert [(r.prefix, r.rate_per_minute) for r in plan_rates(conn, plan)] == [
        ("49", Decimal("0.07"))
    ]


def test_replace_touches_only_its_plan(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    path = write(tmp_path, GOOD)
    for plan in plans:
        assert cli("import", "--plan", plan, str(path)).exit_code == 0
    empty = write(tmp_path, "prefix,rate_per_minute\n", "empty.csv")
    assert cli("import", "--plan", plans[0], "--replace", str(empty)).exit_code == 0
    assert plan_rates(conn, plans[0]) == []
    assert len(plan_rates(conn, plans[1])) == 3


def test_version_is_bumped_once_and_workers_are_notified_once(
    cli: Any, db_url: str, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    plan = plans[0]
    path = write(tmp_path, GOOD)
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN apolo_rates")
        for args, version in [((), 2), ((), 3), (("--replace",), 4), (("--replace",), 5)]:
            assert cli("import", "--plan", plan, *args, str(path)).exit_code == 0
            assert plan_info(conn, plan) == (version, "USD")
            notes = list(listener.notifies(timeout=0.5))
            assert [n.channel for n in notes] == ["apolo_rates"]


def test_export_import_round_trip(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    source, copy = plans
    text = (
        "prefix,name,rate_per_minute,connection_fee,initial_increment,increment,"
        "effective_start,effective_end,priority,enabled\n"
        '44,"Comma, ""quoted"" and\nnewline",0.015,0.1,30,6,2024-01-01,,0,true\n'
        "44,UK later,0.016,,,,2025-01-01T00:00:00.123456+01:00,,0,no\n"
        "44,UK priority,0.02,,,,2024-01-01,2026-01-01,5,\n"
        "0044,Leading zeros,999999999999.999999,,1,1,,,-3,\n"
        "1,Ünïcödé ☎ 東京,0.000001,,,,,,,\n"
        "2, spaced ,0,0,,,,,,\n"
        "3,=SUM(A1),0.5,,,,,,,\n"
    )
    assert cli("import", "--plan", source, str(write(tmp_path, text))).exit_code == 0
    out = tmp_path / "export.csv"
    result = cli("export", "--plan", source, "--output", str(out))
    assert result.exit_code == 0, result.output
    assert f"exported 7 rates of plan '{source}'" in result.stderr
    exported = out.read_bytes().decode("utf-8")
    assert exported.startswith(",".join(FIELDS) + "\r\n")
    assert "\r\n3,'=SUM(A1),0.5," in exported
    assert cli("import", "--plan", copy, str(out)).exit_code == 0
    original, again = plan_rates(conn, source), plan_rates(conn, copy)
    assert [r.prefix for r in original] == ["0044", "1", "2", "3", "44", "44", "44"]
    escaped = [r for r in again if r.prefix == "3"]
    assert [r.name for r in escaped] == ["'=SUM(A1)"]  # the documented exception
    assert [r for r in again if r.prefix != "3"] == [r for r in original if r.prefix != "3"]
    # without --output the same text goes to stdout
    stdout = cli("export", "--plan", source)
    assert stdout.exit_code == 0 and stdout.stdout_bytes == out.read_bytes()


def test_export_of_an_unknown_plan(cli: Any, plans: list[str]) -> None:
    result = cli("export", "--plan", plans[0])
    assert result.exit_code == 1
    assert f"there is no rate plan named '{plans[0]}'" in result.stderr


def test_copy_rates_api_checks_duplicates_and_does_not_commit(
    db_url: str, conn: psycopg.Connection[Any], plans: list[str]
) -> None:
    now = datetime.now(UTC)
    parsed = list(iter_rate_rows(["prefix,rate_per_minute\n", "1,1\n", "2,2\n", "+1,3\n"], now))
    rows = [r for r in parsed if isinstance(r, RateRow)]
    with psycopg.connect(db_url) as work:
        with pytest.raises(DuplicateRatesError) as caught:
            copy_rates(work, plans[0], rows, replace=False, currency="USD")
        assert [str(e) for e in caught.value.errors] == [
            "line 4: prefix: same prefix, effective_start, priority and timing as line 2"
        ]
        work.rollback()
        assert copy_rates(work, plans[0], rows[:2], replace=False, currency="USD") == 2
        assert plan_info(conn, plans[0]) is None  # not committed yet
        work.commit()
    assert [r.prefix for r in plan_rates(conn, plans[0])] == ["1", "2"]
    with pytest.raises(PlanNotFoundError), conn.transaction():
        stream_plan_rates(conn, plans[1])


def test_generated_200k_rows_import(
    cli: Any, conn: psycopg.Connection[Any], plans: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    write_big_csv(path, 200_000)
    started = time.monotonic()
    result = cli("import", "--plan", plans[0], str(path))
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output[-2000:]
    print(f"\n200k-row import: {seconds:.1f}s, {200_000 / seconds:,.0f} rows/s")
    count = conn.execute(
        "SELECT count(*), count(DISTINCT length(prefix)), min(length(prefix)), max(length(prefix))"
        " FROM rates r JOIN rate_plans p ON p.id = r.plan_id WHERE p.name = %s",
        (plans[0],),
    ).fetchone()
    assert count == (200_000, 12, 1, 12)
    assert plan_info(conn, plans[0]) == (2, "USD")


def test_big_csv_generator_is_seeded(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_big_csv(a, 1000)
    write_big_csv(b, 1000)
    assert a.read_bytes() == b.read_bytes()
    parsed = list(iter_rate_rows(a.read_text().splitlines(keepends=True), datetime.now(UTC)))
    assert len(parsed) == 1000 and all(isinstance(r, RateRow) for r in parsed)
    keys = {(r.prefix, r.effective_start, r.priority) for r in parsed if isinstance(r, RateRow)}
    assert len(keys) == 1000
