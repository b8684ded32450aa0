"""Processes a bench drives: the real sidecar under gunicorn, a bare WSGI floor, the loader."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.loadgen import Spec

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _wait_ready(server: Server, path: str, timeout: float = 60.0) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}; see {server.log}")
        try:
            if requests.get(server.url + path, timeout=5).status_code in (200, 503):
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not start within {timeout:.0f} s; see {server.log}")


def _log_path(name: str, port: int) -> Path:
    directory = ROOT / ".data" / "bench"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name}-{port}.log"


def start_sidecar(
    db_url: str,
    redis_url: str,
    fs_auth: tuple[str, str],
    workers: int = 2,
    threads: int = 8,
    nice: int = 0,
    env: dict[str, str] | None = None,
) -> Server:
    """``apolo serve`` exactly as production runs it, on a free loopback port (``nice``: at
    that lower CPU priority, as the CDR unit's ``Nice=`` runs it; ``env``: more settings)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "APOLO_FS_USER": fs_auth[0],
        "APOLO_FS_PASSWORD": fs_auth[1],
        "APOLO_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    log = _log_path("sidecar", port)
    cmd = [
        *(["nice", "-n", str(nice)] if nice else []),
        sys.executable,
        "-m",
        "sidecar.cli",
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    return _wait_ready(Server(port, proc, log), "/healthz")


def start_bare_wsgi(workers: int = 2, threads: int = 8) -> Server:
    """The floor: the same gunicorn settings serving a WSGI app that does nothing."""
    port = free_port()
    log = _log_path("bare", port)
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--keep-alive",
        "75",
        "--access-logfile",
        "-",
        "bench.bare_wsgi:app",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    return _wait_ready(Server(port, proc, log), "/")


def load(spec: Spec, timeout: float | None = None) -> dict[str, Any]:
    """Run the load generator in its own process on ``spec``; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="apolo-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.pickle", Path(tmp) / "out.json"
        spec_path.write_bytes(pickle.dumps(dataclasses.asdict(spec)))
        limit = timeout if timeout is not None else spec.max_seconds + 60
        subprocess.run(
            [sys.executable, "-m", "bench.loadgen", str(spec_path), str(out_path)],
            check=True,
            timeout=limit,
            cwd=ROOT,
        )
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return result


def fs_handler(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``bench.fs_handler`` (the mod_python3 hook on threads) in its own process."""
    with tempfile.TemporaryDirectory(prefix="apolo-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "bench.fs_handler", str(spec_path), str(out_path)],
            check=True, timeout=timeout, cwd=ROOT,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return result


def worker_pids(master: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            pids.append(int(entry))
    return sorted(pids)


def smaps_of(pid: int | str) -> dict[str, int]:
    """kB figures of /proc/<pid>/smaps_rollup; ``uss`` = private clean + dirty."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                out[key.strip().lower()] = int(rest.split()[0])
    out["uss"] = out.get("private_clean", 0) + out.get("private_dirty", 0)
    return out


def worker_memory(master: int) -> dict[str, float]:
    """The largest PSS, USS and RSS (MiB) among a gunicorn master's workers, as they are."""
    figures = [smaps_of(pid) for pid in worker_pids(master)]
    return {
        "workers": len(figures),
        **{
            f"{key}_mib": round(max((f.get(key, 0) for f in figures), default=0) / 1024, 1)
            for key in ("pss", "uss", "rss")
        },
    }
