"""Reliability suite fixtures: private PostgreSQL/Redis that the fault scenarios may kill.

The fault scenarios restart or kill servers, so they never touch the servers the other tests
share: ``scripts/services.sh`` starts a cluster and a Redis of their own under
``.data/reliability`` (ports ``APOLO_REL_PG_PORT`` / ``APOLO_REL_REDIS_PORT``, defaults
57432 / 57379). The hostile-input and secrets checks use the shared fixtures of
``tests/conftest.py``. Slow scenarios carry the ``reliability`` marker; the rest is the fast
subset that runs in ``make test``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from conftest import DATA_TABLES, ROOT, Seed, _redis_db, _with_db
from psycopg import sql

from reliability.tally import TALLY

HERE = Path(__file__).resolve().parent
DATA_DIR = ROOT / ".data" / "reliability"
PG_PORT = os.environ.get("APOLO_REL_PG_PORT", "57432")
REDIS_PORT = os.environ.get("APOLO_REL_REDIS_PORT", "57379")
REL_DB = "apolo_rel"
REL_REDIS_DB = 7


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: slow fault/load scenarios on private servers (make reliability)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep ``make test`` fast: the slow scenarios run only when asked for by marker or env."""
    if "reliability" in (config.option.markexpr or "") or os.environ.get("APOLO_RELIABILITY"):
        return
    skip = pytest.mark.skip(reason="slow scenario: make reliability (pytest -m reliability)")
    for item in items:
        if item.get_closest_marker("reliability") and Path(str(item.path)).is_relative_to(HERE):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.scenarios and not TALLY.hostile_tried:
        return
    terminalreporter.section("apolo reliability summary")
    for line in TALLY.lines():
        terminalreporter.write_line(line)


def _services_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(APOLO_DATA_DIR=str(DATA_DIR), APOLO_PG_PORT=PG_PORT, APOLO_REDIS_PORT=REDIS_PORT)
    return env


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _pg_ctl() -> str:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
    return str(bins[-1])


@dataclass
class PrivateServers:
    """The suite's own PostgreSQL cluster and Redis, with the faults it may inject."""

    server_url: str
    redis_server_url: str

    @property
    def db_url(self) -> str:
        return _with_db(self.server_url, REL_DB)

    @property
    def redis_url(self) -> str:
        return _redis_db(self.redis_server_url, REL_REDIS_DB)

    def start(self) -> None:
        done = subprocess.run(
            ["scripts/services.sh"], cwd=ROOT, env=_services_env(),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            log = DATA_DIR / "pg" / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else "(no server.log)"
            raise RuntimeError(
                f"scripts/services.sh exited {done.returncode}\nstderr:\n{done.stderr}\n"
                f"{log}:\n{tail}"
            )
        out = done.stdout
        urls = dict(
            line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line
        )
        self.server_url = urls["DATABASE_URL"].strip("'")
        self.redis_server_url = urls["REDIS_URL"].strip("'")

    def stop_postgres(self) -> None:
        subprocess.run(
            _as_postgres(_pg_ctl(), "-D", str(DATA_DIR / "pg"), "-m", "fast", "-w", "stop"),
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def restart_postgres(self) -> None:
        self.stop_postgres()
        self.start()

    def stop_redis(self) -> None:
        client = redis_lib.Redis.from_url(self.redis_server_url)
        try:
            client.shutdown(nosave=True)
        except redis_lib.ConnectionError:
            pass  # the connection closes as the server exits

    def restart_redis(self) -> None:
        self.stop_redis()
        self.start()

    def flushall(self) -> None:
        redis_lib.Redis.from_url(self.redis_server_url).flushall()


def _already_running() -> bool:
    pid = DATA_DIR / "redis" / "redis.pid"
    redis_up = pid.is_file() and Path(f"/proc/{pid.read_text().strip() or 0}").exists()
    pg_up = subprocess.run(
        _as_postgres(_pg_ctl(), "-D", str(DATA_DIR / "pg"), "status"), capture_output=True
    ).returncode == 0  # fmt: skip
    return redis_up and pg_up


@pytest.fixture(scope="session")
def servers() -> Iterator[PrivateServers]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    was_running = _already_running()
    private = PrivateServers("", "")
    private.start()
    with psycopg.connect(_with_db(private.server_url, "postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (REL_DB,)
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(REL_DB)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(REL_DB)))
    from sidecar.migrations import upgrade

    with psycopg.connect(private.db_url) as conn:
        upgrade(conn)
    yield private
    if was_running:
        private.start()  # a scenario may have left one down; leave them as they were found
    else:
        subprocess.run(["scripts/stop_services.sh", str(DATA_DIR)], cwd=ROOT, check=True)


@pytest.fixture
def rel_seed(servers: PrivateServers) -> Seed:
    """Empty data tables and Redis database on the private servers, and a seeder for them."""
    servers.start()  # a scenario before may have left one down
    with psycopg.connect(servers.db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {DATA_TABLES} CASCADE")
    redis_lib.Redis.from_url(servers.redis_url).flushdb()
    return Seed(servers.db_url)
