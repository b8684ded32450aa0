"""scripts/services.sh starts private PostgreSQL/Redis; `make stop` (scripts/stop_services.sh)
stops every one of them, the reliability suite's included; scripts/with_services.sh (what
`make test` runs under) stops the ones it had to start itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from conftest import ROOT, free_port

pytestmark = pytest.mark.integration


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        APOLO_DATA_DIR=str(data_dir),
        APOLO_PG_PORT=str(free_port()),
        APOLO_REDIS_PORT=str(free_port()),
    )
    return env


def start(data_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    out = subprocess.run(
        ["scripts/services.sh"], cwd=ROOT, env=env or _env(data_dir), check=True,
        capture_output=True, text=True, timeout=180,
    ).stdout  # fmt: skip
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    return {k: v.strip("'") for k, v in pairs}


def up(urls: dict[str, str]) -> tuple[bool, bool]:
    try:
        with psycopg.connect(urls["DATABASE_URL"], connect_timeout=2):
            pg = True
    except psycopg.OperationalError:
        pg = False
    try:
        redis_ok = bool(redis_lib.Redis.from_url(urls["REDIS_URL"], socket_timeout=2).ping())
    except redis_lib.ConnectionError:
        redis_ok = False
    return pg, redis_ok


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """Under the repository: PostgreSQL runs as its own user, who cannot enter pytest's
    private temporary directories. Short: the nested socket path (``…/reliability/pg-run/
    .s.PGSQL.<port>``) must stay under the 107 bytes of a Unix socket name."""
    path = ROOT / ".data" / f"srv-{tmp_path.name[-8:]}-{os.getpid()}"
    yield path
    subprocess.run(["scripts/stop_services.sh", str(path)], cwd=ROOT, timeout=120)
    shutil.rmtree(path, ignore_errors=True)


def test_make_stop_stops_every_private_pair(data: Path) -> None:
    run_urls = start(data)
    reliability_urls = start(data / "reliability")
    assert up(run_urls) == (True, True) and up(reliability_urls) == (True, True)
    subprocess.run(
        ["make", "-s", "stop"], cwd=ROOT, env={**os.environ, "APOLO_DATA_DIR": str(data)},
        check=True, timeout=120,
    )  # fmt: skip
    assert up(run_urls) == (False, False)
    assert up(reliability_urls) == (False, False)


def test_a_run_stops_only_what_it_started(data: Path, tmp_path: Path) -> None:
    env = _env(data)
    seen = tmp_path / "seen"
    subprocess.run(
        ["scripts/with_services.sh", "sh", "-c", f'echo "$DATABASE_URL $REDIS_URL" > {seen}'],
        cwd=ROOT, env=env, check=True, timeout=180,
    )  # fmt: skip
    db, rd = seen.read_text().split()
    assert up({"DATABASE_URL": db, "REDIS_URL": rd}) == (False, False)

    urls = start(data)  # already running before the next run: it stays up afterwards
    subprocess.run(
        ["scripts/with_services.sh", "true"], cwd=ROOT, env=_env(data), check=True, timeout=180
    )
    assert up(urls) == (True, True)
    subprocess.run(["scripts/stop_services.sh", str(data)], cwd=ROOT, check=True, timeout=120)
    assert up(urls) == (False, False)


def test_a_port_that_cannot_be_bound_is_passed_over(data: Path) -> None:
    """Ports of 32768-60999 are also the kernel's ephemeral range: a client socket (or one in
    TIME-WAIT) can hold the port asked for without listening on it. The servers start on the
    next ports instead of failing."""
    env = _env(data)
    with socket.socket() as pg_holder, socket.socket() as redis_holder:
        pg_holder.bind(("127.0.0.1", int(env["APOLO_PG_PORT"])))  # bound, never listening
        redis_holder.bind(("127.0.0.1", int(env["APOLO_REDIS_PORT"])))
        urls = start(data, env)
    assert f":{env['APOLO_PG_PORT']}/" not in urls["DATABASE_URL"]
    assert f":{env['APOLO_REDIS_PORT']}/" not in urls["REDIS_URL"]
    assert up(urls) == (True, True)
