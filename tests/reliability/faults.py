"""Fault injection on sidecar processes, and the err-log-dir replay that follows an outage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FS_PASSWORD, FS_USER, ROOT, SidecarProcess


def workers_of(sidecar: SidecarProcess) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(sidecar.proc.pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in out.split()]


def wait_for_workers(
    sidecar: SidecarProcess, count: int, exclude: set[int], timeout: float = 20.0
) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in workers_of(sidecar) if p not in exclude]
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not respawn {count} worker(s) within {timeout} s")


def kill_worker(sidecar: SidecarProcess) -> int:
    """SIGKILL one gunicorn worker (the master respawns it)."""
    pids = workers_of(sidecar)
    assert pids, "the sidecar has no worker process"
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def kill_sidecar(sidecar: SidecarProcess) -> None:
    """SIGKILL the gunicorn master and every worker, as an OOM killer or a power cut would."""
    pids = workers_of(sidecar)
    sidecar.proc.send_signal(signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sidecar.proc.wait(timeout=10)


def replay(spool: Path, url: str) -> tuple[int, str]:
    """``apolo cdr replay`` as an operator runs it; (exit code, output)."""
    env = {**os.environ, "APOLO_FS_USER": FS_USER, "APOLO_FS_PASSWORD": FS_PASSWORD}
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "cdr", "replay", str(spool), "--url", url],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def spooled(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.cdr.xml"))


def kill_process(proc: subprocess.Popen[bytes] | None, log: Path) -> None:
    """SIGKILL a running CLI process (its log tail explains one that already died)."""
    assert proc is not None and proc.poll() is None, log.read_text()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, as systemd stops a service; SIGKILL after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
