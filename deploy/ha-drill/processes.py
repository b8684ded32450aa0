"""Processes of the HA layout on loopback (``make ha-drill`` and the reliability tests that
need Patroni or HAProxy): each engine a child process in a session of its own, so a fault can
kill it and what it started at once; ports, directories, fresh secrets, and Apolo's own
processes (``apolo serve``, ``apolo control``). The engines are in ``engines.py`` and
``haproxy.py``.

PostgreSQL refuses to run as root: when this runs as root, Patroni (which starts PostgreSQL)
runs as ``postgres`` and its directories belong to it. Configuration files are written as
JSON, which YAML readers (Patroni) accept as is.
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


def ensure_free(*ports: int, timeout: float = 30.0) -> None:
    """Wait until each port can be listened on: the drill's ports lie in Linux's ephemeral
    range, so an outgoing connection of any process may hold one for a while."""
    for port in ports:
        wait_for(f"port {port} free", lambda p=port: bindable(p), timeout, every=0.5)  # type: ignore[misc]


def bindable(port: int) -> bool:
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
    ended: list[str] = []
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


@dataclass
class Secrets:
    """Fresh per run, kept under the run directory only (0600)."""

    values: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        if name not in self.values:
            self.values[name] = secrets.token_urlsafe(18)
        return self.values[name]
