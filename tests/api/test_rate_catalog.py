"""The rate catalog: one index file per plan version and host, built once (in a child
process, under a lock), mapped by every worker, replaced when the plan changes."""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from sidecar.db import connect_cli
from sidecar.repo import rates as rates_repo
from sidecar.services.rate_catalog import RateCatalog

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _catalog(db_url: str, index_dir: Path, **kwargs) -> RateCatalog:  # type: ignore[no-untyped-def]
    return RateCatalog(
        lambda: connect_cli(db_url), 0.1, database_url=db_url, index_dir=str(index_dir), **kwargs
    )


def _files(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.rglob("*.lpm"))


def _add_rate(db_url: str, plan_id: int, prefix: str, rpm: str) -> None:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        rates_repo.add_rate(c, plan_id, prefix=prefix, name=f"dest {prefix}",
                            rate_per_minute=Decimal(rpm), effective_start=datetime(2020, 1, 1,
                            tzinfo=UTC))  # fmt: skip


def test_workers_share_one_file_built_once(seed, db_url, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("51", "0.10"), ("519", "0.30")])
    plan_id = seed.plans[-1]
    workers = [_catalog(db_url, tmp_path) for _ in range(4)]
    found = []
    with caplog.at_level(logging.INFO, logger="sidecar.services.rate_catalog"):
        threads = [threading.Thread(target=lambda w=w: found.append(w.index(plan_id)))
                   for w in workers]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for w in workers:
        w.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum(" built in " in m for m in messages) == 1, messages
    assert sum(" mapped in " in m for m in messages) == 3, messages
    assert [x.lookup("5198", NOW).rate_per_minute for x in found] == [Decimal("0.300000")] * 4
    [database_dir] = tmp_path.iterdir()
    assert database_dir.name.startswith("db-") and _files(tmp_path) == [f"plan-{plan_id}-v3.lpm"]
    assert (os.stat(tmp_path).st_mode & 0o777) == 0o700 == (os.stat(database_dir).st_mode & 0o777)


def test_small_plans_build_in_the_worker_big_in_a_child(seed, db_url, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("51", "0.10"), ("519", "0.30")])
    small = seed.plans[-1]
    seed.plan([("44", "0.20"), ("441", "0.25")])
    big = seed.plans[-1]
    in_worker, in_child = _catalog(db_url, tmp_path), _catalog(db_url, tmp_path, child_min_rates=2)
    try:
        with caplog.at_level(logging.INFO, logger="sidecar.services.rate_catalog"):
            assert in_worker.index(small).lookup("5198", NOW).prefix == "519"
            assert in_child.index(big).lookup("4410", NOW).prefix == "441"
    finally:
        in_worker.stop()
        in_child.stop()
    [built_small] = [r.getMessage() for r in caplog.records if f"plan {small} " in r.getMessage()]
    [built_big] = [r.getMessage() for r in caplog.records if f"plan {big} " in r.getMessage()]
    assert " 2 rates built in " in built_small and "child" not in built_small
    assert " 2 rates built in a child in " in built_big


def test_a_changed_plan_is_swapped_and_its_old_file_removed(seed, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("51", "0.10")])
    plan_id = seed.plans[-1]
    catalog = _catalog(db_url, tmp_path)
    try:
        old = catalog.index(plan_id)
        assert old.lookup("5199", NOW).prefix == "51"
        _add_rate(db_url, plan_id, "519", "0.50")
        deadline = time.monotonic() + 20
        while catalog.index(plan_id) is old:
            assert time.monotonic() < deadline, "the catalog never loaded the new version"
            time.sleep(0.05)
        new = catalog.index(plan_id)
        assert new.version > old.version and new.lookup("5199", NOW).prefix == "519"
        assert _files(tmp_path) == [f"plan-{plan_id}-v{new.version}.lpm"]
        # the old index's file is gone, its pages are not: it still answers
        assert old.lookup("5199", NOW).prefix == "51"
        # a worker started now maps the current file instead of building
        again = _catalog(db_url, tmp_path)
        assert again.index(plan_id).version == new.version
        again.stop()
    finally:
        catalog.stop()


def test_without_a_database_url_it_builds_in_process(seed, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("44", "0.20")])
    plan_id = seed.plans[-1]
    catalog = RateCatalog(lambda: connect_cli(db_url), 0.1, index_dir=str(tmp_path))
    try:
        assert catalog.index(plan_id).lookup("4420", NOW).prefix == "44"
        assert catalog.index(10**9).lookup("4420", NOW) is None  # no such plan: no file
        assert len(_files(tmp_path)) == 1
    finally:
        catalog.stop()


def test_a_damaged_file_is_rebuilt(seed, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("33", "0.20")])
    plan_id = seed.plans[-1]
    first = _catalog(db_url, tmp_path)
    first.index(plan_id)
    first.stop()
    [path] = tmp_path.rglob("*.lpm")
    path.write_bytes(path.read_bytes()[:100])
    second = _catalog(db_url, tmp_path)
    try:
        assert second.index(plan_id).lookup("331", NOW).prefix == "33"
    finally:
        second.stop()


def test_a_directory_others_can_write_is_refused(seed, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("33", "0.20")])
    shared = tmp_path / "common"
    shared.mkdir()
    shared.chmod(0o777)
    catalog = _catalog(db_url, shared)
    try:
        with pytest.raises(RuntimeError, match="only its owner can write"):
            catalog.index(seed.plans[-1])
    finally:
        catalog.stop()


def test_dirs_of_dropped_and_long_unused_databases_are_deleted(seed, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed.plan([("33", "0.20")])
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        cluster, oid = rates_repo.database_identity(c)
    dropped = tmp_path / f"db-{cluster}-4000000000"  # no database has that oid
    elsewhere = tmp_path / "db-elsewhere-16384"  # another cluster, used lately
    forgotten = tmp_path / "db-forgotten-16384"  # another cluster, unused for 8 days
    for d in (dropped, elsewhere, forgotten):
        d.mkdir(mode=0o700)
        (d / "plan-1-v2.lpm").write_bytes(b"x")
    week_ago, minutes_ago = time.time() - 8 * 86400, time.time() - 120
    os.utime(forgotten, (week_ago, week_ago))
    os.utime(dropped, (minutes_ago, minutes_ago))
    just_made = tmp_path / f"db-{cluster}-4000000001"  # of a database made a moment ago?
    just_made.mkdir(mode=0o700)
    catalog = _catalog(db_url, tmp_path)
    try:
        catalog.index(seed.plans[-1])
    finally:
        catalog.stop()
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted([elsewhere.name, just_made.name, f"db-{cluster}-{oid}"])
