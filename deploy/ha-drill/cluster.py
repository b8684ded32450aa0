"""The HA layout on loopback, each engine a child process: etcd, Patroni PostgreSQL, Redis with
Sentinel, HAProxy, sidecars and ``apolo control``. Used by ``make ha-drill`` and by the
reliability tests that need Patroni or HAProxy.

The engines are Debian's (``patroni``, ``etcd-server``, ``redis-sentinel``, ``haproxy``);
failover is theirs. PostgreSQL refuses to run as root, so when this runs as root Patroni
(which starts PostgreSQL) runs as ``postgres`` and its directories belong to it. Every
process gets a session of its own, so a fault can kill it (and what it started) at once.
Configuration files are written as JSON, which YAML readers (Patroni) accept as is.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
PACKAGES = {"patroni": "patroni", "etcd": "etcd-server", "haproxy": "haproxy",
            "redis-sentinel": "redis-sentinel", "redis-server": "redis-server"}  # fmt: skip
PG_USER = "postgres" if os.geteuid() == 0 else None
# every process spawned is noted here (pid, program), so a run that died without cleaning
# up can have its leftovers ended by the next one (``end_leftovers``)
PID_LOG: Path | None = None


def missing_engines() -> list[str]:
    """Debian packages whose program is not installed."""
    found = {name: shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")
             for name in PACKAGES}  # fmt: skip
    return sorted({PACKAGES[n] for n, path in found.items() if path is None})


def wait_for(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> float:
    """Seconds until ``check()`` held; raises after ``timeout``."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: S110 - not up yet
            pass
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def ensure_free(*ports: int, timeout: float = 90.0) -> None:
    """Wait until each port can be listened on: the drill's ports lie in Linux's ephemeral
    range, so an outgoing connection of any process may hold one for a while."""
    for port in ports:
        wait_for(f"port {port} free", lambda p=port: _bindable(p), timeout, every=0.5)  # type: ignore[misc]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the process and its session (a machine lost, as far as it can tell)."""
        _signal_group(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None,
          as_postgres: bool = False, cwd: Path | None = None) -> Proc:  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=cwd,
            user=PG_USER if as_postgres else None, group=PG_USER if as_postgres else None,
            extra_groups=[] if as_postgres and PG_USER else None,
        )  # fmt: skip
    if PID_LOG is not None:
        with open(PID_LOG, "a") as pids:
            pids.write(f"{popen.pid} {Path(args[0]).name}\n")
    return Proc(name, popen, log)


def note_pid(pid: int, program: str) -> None:
    if PID_LOG is not None:
        with open(PID_LOG, "a") as pids:
            pids.write(f"{pid} {program}\n")


def end_leftovers(pid_log: Path) -> list[str]:
    """SIGKILL, by pid, what an earlier run noted and left running (its session too);
    a pid now running another program is left alone."""
    ended = []
    if not pid_log.exists():
        return ended
    for line in pid_log.read_text().splitlines():
        pid_text, _, program = line.partition(" ")
        try:
            pid = int(pid_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (ValueError, OSError):
            continue
        if program and program in cmdline:
            _signal_group(pid, signal.SIGKILL)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            ended.append(f"{pid} {program}")
    pid_log.unlink()
    return ended


def owned_dir(path: Path, postgres: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if postgres and PG_USER:
        shutil.chown(path, PG_USER, PG_USER)
    path.chmod(0o700)
    return path


def write_config(path: Path, content: str | dict[str, Any], postgres: bool = False) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    path.chmod(0o600)
    if postgres and PG_USER:
        shutil.chown(path, PG_USER, PG_USER)
    return path


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


# ---------------------------------------------------------------------------- HAProxy


def haproxy_config(sidecars: list[int], bind: int, patroni: list[PatroniNode],
                   pg_rw: int, pg_ro: int, stats_socket: Path) -> str:  # fmt: skip
    """deploy/haproxy/haproxy.cfg with the drill's ports and quicker health checks."""
    pg_servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.pg_port} check port {n.api_port}" for n in patroni
    )
    apps = "\n".join(
        f"    server sidecar{i + 1} 127.0.0.1:{port} check" for i, port in enumerate(sidecars)
    )
    return f"""global
    maxconn 4000
    stats socket {stats_socket} mode 600 level admin

defaults
    log global
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    retries 2
    option redispatch 1

# PostgreSQL, writes: only the node whose Patroni answers 200 on /primary
frontend postgres_rw
    bind 127.0.0.1:{pg_rw}
    mode tcp
    default_backend pg_primary

# reads that may lag: the replicas, or the primary while there is none
frontend postgres_ro
    bind 127.0.0.1:{pg_ro}
    mode tcp
    use_backend pg_replicas if {{ nbsrv(pg_replicas) gt 0 }}
    default_backend pg_primary

backend pg_primary
    mode tcp
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{pg_servers}

backend pg_replicas
    mode tcp
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
{pg_servers}

frontend apolo
    bind 127.0.0.1:{bind}
    mode http
    option httplog
    option forwardfor
    default_backend sidecars

backend sidecars
    mode http
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    # every FreeSWITCH-facing request is idempotent (authorize per call uuid, CDR per uuid
    # and leg): one the dead sidecar never answered is safely sent to the other
    retry-on conn-failure empty-response junk-response response-timeout
    # ... which needs the whole request at hand: wait for the body before passing it on
    option http-buffer-request
    default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 1
{apps}
"""


@dataclass
class HAProxy:
    directory: Path
    config: str
    ports: list[int]
    proc: Proc | None = None

    @property
    def stats_socket(self) -> Path:
        return self.directory / "haproxy.sock"

    def start(self) -> None:
        cfg = write_config(self.directory / "haproxy.cfg", self.config)
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy.cfg: {check.stderr.decode()[-2000:]}")
        ensure_free(*self.ports)
        self.proc = spawn("haproxy", ["haproxy", "-db", "-f", str(cfg)],
                          self.directory / "haproxy.log")  # fmt: skip
        for port in self.ports:
            wait_for(f"haproxy :{port}", lambda p=port: port_open(p), 20)  # type: ignore[misc]

    def server_states(self, backend: str) -> dict[str, str]:
        """``{server: UP|DOWN|...}`` of a backend, from the stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        states = {}
        for line in data.decode().splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[0] == backend and cells[1] not in ("FRONTEND", "BACKEND"):
                states[cells[1]] = cells[17].split(" ")[0]
        return states


# ---------------------------------------------------------------------------- apolo


@dataclass
class ApoloProc:
    """``apolo serve`` (a sidecar) or ``apolo control``."""

    directory: Path
    name: str
    args: list[str]
    env: dict[str, str]
    health_url: str = ""
    port: int = 0
    proc: Proc | None = None
    starts: int = 0

    def start(self) -> None:
        environ = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
                   "HOME": str(self.directory), **self.env}  # fmt: skip
        self.starts += 1
        if self.port:
            ensure_free(self.port)
        self.proc = spawn(self.name, [str(ROOT / ".venv" / "bin" / "apolo"), *self.args],
                          self.directory / f"{self.name}.log", environ)  # fmt: skip
        if self.health_url:
            wait_for(self.name, self._healthy, 60, every=0.2)

    def _healthy(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"{self.name} exited; see {self.directory / self.name}.log")
        return requests.get(self.health_url, timeout=1).status_code == 200


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


@dataclass
class Secrets:
    """Fresh per run, kept under the run directory only (0600)."""

    values: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        if name not in self.values:
            self.values[name] = secrets.token_urlsafe(18)
        return self.values[name]
