"""A production install: the wheel alone, into a fresh venv, without extras, gives a working
``apolo`` (every module imports, every subcommand answers --help, the schema installs from the
wheel's own migrations, ``apolo serve`` answers /healthz)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
import requests
from conftest import ROOT, free_port

pytestmark = pytest.mark.integration

WALK = """
import importlib, pkgutil, sys
import click
from click.testing import CliRunner
import sidecar
from sidecar.cli.main import cli

assert "site-packages" in sidecar.__file__, sidecar.__file__
for mod in pkgutil.walk_packages(sidecar.__path__, "sidecar."):
    if not mod.name.endswith("__main__"):
        importlib.import_module(mod.name)

def paths(cmd, prefix):
    yield prefix
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from paths(sub, [*prefix, name])

runner = CliRunner()
count = 0
for path in paths(cli, []):
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, (path, result.output, result.exception)
    count += 1
for dev_tool in ("pytest", "mypy", "ruff", "selenium", "hypothesis"):
    try:
        importlib.import_module(dev_tool)
    except ImportError:
        continue
    raise SystemExit(f"{dev_tool} came with a production install")
print(count)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("install")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(work / "dist"), str(ROOT)],
        check=True, cwd=work, timeout=300,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("apolo-*.whl")
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    # exactly `pip install <wheel>`: no extras; the lock's pins (without its hashes, which
    # would demand one for the wheel too) only fix which versions come
    pins = re.findall(r"^\S+==\S+", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    (work / "constraints.txt").write_text("\n".join(pins) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(work / "constraints.txt"),
         str(wheel)],
        check=True, cwd=work, timeout=600,
    )  # fmt: skip
    return work / "venv" / "bin"


def test_every_module_and_subcommand_starts(installed: Path) -> None:
    out = subprocess.run(
        [str(installed / "python"), "-c", WALK],
        capture_output=True, text=True, cwd=installed, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + out.stdout
    assert int(out.stdout.split()[-1]) > 20  # groups and their commands, all of them
    help_text = subprocess.run(
        [str(installed / "apolo"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert help_text.returncode == 0 and "serve" in help_text.stdout


def test_upgrade_and_serve_from_the_wheel(installed: Path, db_url: str, redis_url: str) -> None:
    import psycopg
    from conftest import _with_db
    from psycopg import sql

    name = "apolo_install_test"
    with psycopg.connect(_with_db(db_url, "postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {
        "PATH": f"{installed}:/usr/bin:/bin",
        "DATABASE_URL": _with_db(db_url, name),
        "REDIS_URL": redis_url,
        "APOLO_FS_PASSWORD": "install-test",
        "HOME": str(installed.parent),
    }
    upgrade = subprocess.run(
        [str(installed / "apolo"), "db", "upgrade"],
        env=env, capture_output=True, text=True, cwd="/", timeout=120,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr
    with psycopg.connect(_with_db(db_url, name)) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_version").fetchone()
    migrations = list((ROOT / "sql").glob("[0-9][0-9][0-9]_*.sql"))
    assert applied == (len(migrations),)

    port = free_port()
    proc = subprocess.Popen(
        [str(installed / "apolo"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert health is not None, proc.stdout.read().decode() if proc.stdout else ""
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        # no per-user control socket that a second sidecar on the host would take over
        assert not (installed.parent / ".gunicorn").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        with psycopg.connect(_with_db(db_url, "postgres"), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
