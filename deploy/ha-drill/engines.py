"""The engines of the HA layout as processes: etcd, Patroni PostgreSQL nodes, Redis and
Sentinel (Debian's ``etcd-server``, ``patroni``, ``redis-server``, ``redis-sentinel``).
Failover is theirs; these only start them, ask them their state and kill them."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from processes import (
    PG_BIN,
    PG_USER,
    ROOT,
    Proc,
    ensure_free,
    note_pid,
    owned_dir,
    port_open,
    spawn,
    wait_for,
    write_config,
)

# ---------------------------------------------------------------------------- etcd


@dataclass
class Etcd:
    directory: Path
    client_port: int
    peer_port: int
    proc: Proc | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self) -> None:
        data = owned_dir(self.directory / "etcd")
        ensure_free(self.client_port, self.peer_port)
        peer, client = f"http://127.0.0.1:{self.peer_port}", f"http://{self.endpoint}"
        self.proc = spawn("etcd", [
            "etcd", "--name", "drill", "--data-dir", str(data),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"drill={peer}", "--initial-cluster-state", "new",
            "--log-level", "warn",
        ], self.directory / "etcd.log")  # fmt: skip
        wait_for("etcd", lambda: requests.get(f"{client}/health", timeout=1).ok, 30)


# ---------------------------------------------------------------------------- Patroni


@dataclass
class PatroniNode:
    directory: Path
    name: str
    pg_port: int
    api_port: int
    etcd: Etcd
    scope: str
    passwords: dict[str, str]
    proc: Proc | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / self.name

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def config(self) -> dict[str, Any]:
        """A drill node: the production example (deploy/patroni/patroni.yml) with short
        timings, so a failover takes about ``ttl`` seconds, and trust nowhere."""
        run = self.directory / "run"
        return {
            "scope": self.scope,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{self.api_port}",
                        "connect_address": f"127.0.0.1:{self.api_port}"},
            "etcd3": {"hosts": self.etcd.endpoint},
            "bootstrap": {
                "dcs": {
                    "ttl": 10, "loop_wait": 1, "retry_timeout": 3,
                    "maximum_lag_on_failover": 1048576,
                    # a commit returns once the synchronous standby has flushed it: nothing
                    # acknowledged is lost when the primary is, and only that standby may
                    # be promoted
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": True, "use_slots": True,
                        "parameters": {"wal_log_hints": "on", "max_connections": 300,
                                       "hot_standby_feedback": "on",
                                       "max_standby_streaming_delay": "60s"},
                    },
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "pg_hba": [
                    "local all all peer" if PG_USER else "local all all trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port}",
                "connect_address": f"127.0.0.1:{self.pg_port}",
                "data_dir": str(self.data_dir),
                "bin_dir": str(PG_BIN[-1].parent),
                "pgpass": str(run / f"{self.name}.pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": self.passwords["superuser"]},
                    "replication": {"username": "replicator",
                                    "password": self.passwords["replication"]},
                    "rewind": {"username": "rewinder", "password": self.passwords["rewind"]},
                },
                "parameters": {"unix_socket_directories": str(run)},
            },
        }  # fmt: skip

    def start(self) -> None:
        run = owned_dir(self.directory / "run", postgres=True)
        owned_dir(self.data_dir, postgres=True)
        ensure_free(self.pg_port, self.api_port)
        cfg = write_config(self.directory / f"{self.name}.yml", self.config(), postgres=True)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(run)}
        self.proc = spawn(f"patroni {self.name}", ["patroni", str(cfg)],
                          self.directory / f"{self.name}.log", env, as_postgres=True,
                          cwd=run)  # fmt: skip

    def is_running(self) -> bool:
        """PostgreSQL of this node is up (noted for ``end_leftovers`` once seen)."""
        pid = self.postmaster_pid()
        if pid is None or not Path(f"/proc/{pid}").exists():
            return False
        note_pid(pid, "postgres")
        return True

    def role(self) -> str:
        """``primary``, ``replica`` or ``down`` as its REST API says."""
        try:
            return str(requests.get(f"{self.api}/patroni", timeout=0.5).json().get("role"))
        except (requests.RequestException, ValueError):
            return "down"

    def is_primary(self) -> bool:
        try:
            return requests.get(f"{self.api}/primary", timeout=0.5).status_code == 200
        except requests.RequestException:
            return False

    def is_sync_standby(self) -> bool:
        try:
            return requests.get(f"{self.api}/sync", timeout=0.5).status_code == 200
        except requests.RequestException:
            return False

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """The node is lost: Patroni and PostgreSQL killed at once (Patroni starts
        PostgreSQL in a session of its own, so it is killed by its pid)."""
        postmaster = self.postmaster_pid()
        if self.proc is not None:
            self.proc.kill()
        if postmaster:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=40)
        postmaster = self.postmaster_pid()  # left behind if Patroni could not stop it
        if postmaster:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------------------- Redis


@dataclass
class RedisNode:
    directory: Path
    port: int
    password: str
    replica_of: int | None = None
    proc: Proc | None = None

    def start(self) -> None:
        data = owned_dir(self.directory / f"redis-{self.port}")
        ensure_free(self.port)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(data),
                "--requirepass", self.password, "--masterauth", self.password]  # fmt: skip
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = spawn(f"redis {self.port}", args, self.directory / f"redis-{self.port}.log")
        wait_for(f"redis {self.port}", lambda: port_open(self.port), 20)


@dataclass
class SentinelNode:
    directory: Path
    port: int
    master: str
    master_port: int
    password: str
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000
    proc: Proc | None = None

    def start(self) -> None:
        data = owned_dir(self.directory / f"sentinel-{self.port}")
        ensure_free(self.port)
        # Sentinel rewrites its file as it learns the replicas and the other sentinels
        cfg = write_config(data / "sentinel.conf", "\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {data}",
            f"sentinel monitor {self.master} 127.0.0.1 {self.master_port} {self.quorum}",
            f"sentinel auth-pass {self.master} {self.password}",
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}",
            f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {self.master} 1", "",
        ]))  # fmt: skip
        self.proc = spawn(f"sentinel {self.port}", ["redis-sentinel", str(cfg)],
                          self.directory / f"sentinel-{self.port}.log")  # fmt: skip
        wait_for(f"sentinel {self.port}", lambda: port_open(self.port), 20)


def create_database(admin_url: str, password: str, app_url: str) -> None:
    """The app's role and database on a fresh primary, migrated by ``apolo db upgrade``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE apolo LOGIN PASSWORD {}").format(sql.Literal(password)))
        c.execute("CREATE DATABASE apolo OWNER apolo")
    env = {**os.environ, "DATABASE_URL": app_url}
    subprocess.run([str(ROOT / ".venv" / "bin" / "apolo"), "db", "upgrade"], env=env,
                   check=True, capture_output=True)  # fmt: skip
