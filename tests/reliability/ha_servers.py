"""Servers for the reconnect tests: a PostgreSQL primary with a streaming standby, and the HA
engines of ``deploy/ha-drill/`` (Redis + Sentinel, Patroni, HAProxy).

The pair is plain PostgreSQL: failing over is ``pg_ctl stop -m immediate`` on the primary and
``pg_ctl promote`` on the standby, which is what Patroni does, without its timings; what is
tested is that Apolo's clients find the new primary by themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from conftest import ROOT, free_port

sys.path.insert(0, str(ROOT / "deploy" / "ha-drill"))
import engines  # the drill's engines, for the tests that run them
import haproxy
import processes

__all__ = ["PG_BIN", "PgPair", "engines", "engines_missing", "haproxy", "processes"]

PG_BIN = processes.PG_BIN[-1].parent if processes.PG_BIN else Path("/nonexistent")


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def _run(*cmd: str) -> None:
    subprocess.run(_as_postgres(*cmd), check=True, capture_output=True, timeout=120, cwd="/")


@dataclass
class PgPair:
    """``primary`` streams to ``standby``; both on loopback, trust auth, throw-away."""

    directory: Path
    primary_port: int = 0
    standby_port: int = 0

    def __post_init__(self) -> None:
        self.primary_port = self.primary_port or free_port()
        self.standby_port = self.standby_port or free_port()

    @property
    def primary(self) -> Path:
        return self.directory / "primary"

    @property
    def standby(self) -> Path:
        return self.directory / "standby"

    def url(self, *ports: int, attrs: str = "read-write", db: str = "apolo") -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
        return f"postgresql://postgres@{hosts}/{db}?target_session_attrs={attrs}&connect_timeout=2"

    def start(self) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        processes.owned_dir(self.directory, postgres=True)
        self.directory.chmod(0o755)
        _run(f"{PG_BIN}/initdb", "-D", str(self.primary), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "-N")  # fmt: skip
        self._pg_ctl(self.primary, self.primary_port, "start")
        with psycopg.connect(self.url(self.primary_port, db="postgres"), autocommit=True) as c:
            c.execute("CREATE DATABASE apolo")
        _run(f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U",
             "postgres", "-D", str(self.standby), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        self._pg_ctl(self.standby, self.standby_port, "start")

    def _pg_ctl(self, data: Path, port: int, action: str) -> None:
        options = (
            f"-p {port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c wal_level=replica -c max_wal_senders=5 -c fsync=off -c hot_standby=on"
        )
        _run(f"{PG_BIN}/pg_ctl", "-D", str(data), "-l", str(data / "server.log"), "-w",
             "-t", "60", "-o", options, action)  # fmt: skip

    def fail_over(self) -> None:
        """The primary dies (immediate shutdown: no checkpoint, clients cut), the standby is
        promoted."""
        _run(f"{PG_BIN}/pg_ctl", "-D", str(self.primary), "-m", "immediate", "-w", "stop")
        _run(f"{PG_BIN}/pg_ctl", "-D", str(self.standby), "-w", "-t", "60", "promote")

    def stop(self) -> None:
        for data in (self.primary, self.standby):
            if (data / "postmaster.pid").exists():
                subprocess.run(_as_postgres(f"{PG_BIN}/pg_ctl", "-D", str(data), "-m",
                                            "immediate", "-w", "stop"),
                               capture_output=True, timeout=60, cwd="/")  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)


def engines_missing(*programs: str) -> list[str]:
    return [p for p in programs if shutil.which(p, path=os.environ.get("PATH", "") + ":/usr/sbin")
            is None]  # fmt: skip
