"""End-to-end tier: the real FreeSWITCH, sipp at both ends, a real ``apolo serve``.

One FreeSWITCH, one sipp UAS and one sidecar serve the whole session; every case makes its
own callers (directory users with their own accounts) and waits until the switch is idle
again, so cases never see each other's calls. Skipped, with the reason, when FreeSWITCH or
sipp is missing (``scripts/test_deps.sh`` installs sipp and the runtime libraries when
``../shared/freeswitch`` is there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FS_PASSWORD, FS_USER, ROOT, Seed, SidecarProcess, start_sidecar

from e2e.fs_switch import (
    FreeSwitch,
    Install,
    Ports,
    SidecarLink,
    build_conf,
    find_install,
    stop_process,
)
from e2e.harness import Harness
from e2e.sipp import SIPP, Uas

HERE = Path(__file__).resolve().parent
INSTALL, NO_INSTALL = find_install()
BLOCK = 5  # APOLO_RESERVATION_SECONDS: short blocks, so cut-offs and extensions come quickly
CURL_CONTEXT = "apolo_curl"
SIDECAR_ENV = {
    "APOLO_RESERVATION_SECONDS": str(BLOCK),
    # the xml_curl route serves the callers in this context; "default" falls back to the
    # static dialplan and the hook
    "APOLO_DIALPLAN_CONTEXTS": CURL_CONTEXT,
    "APOLO_BRIDGE_TEMPLATE": "sofia/gateway/carrier/{callee}",
}


def skip_reason() -> str:
    if INSTALL is None:
        return NO_INSTALL
    if SIPP is None:
        return "sipp is not installed (scripts/test_deps.sh installs it as root)"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if not reason:
        return
    skip = pytest.mark.skip(reason=f"real-FreeSWITCH tier: {reason}")
    for item in items:
        if Path(str(item.path)).is_relative_to(HERE):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """A failed case shows where FreeSWITCH's log is, and how it ends."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    fs = getattr(item, "funcargs", {}).get("switch")
    if report.failed and isinstance(fs, FreeSwitch):
        report.sections.append(("FreeSWITCH log", f"{fs.log_file}\n{fs.tail(30)}"))


@pytest.fixture(scope="session")
def install() -> Install:
    assert INSTALL is not None
    return INSTALL


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def sidecar(db_url: str, redis_url: str) -> Iterator[SidecarProcess]:
    (ROOT / ".data").mkdir(exist_ok=True)
    process = start_sidecar(db_url, redis_url, **SIDECAR_ENV)
    yield process
    process.stop()


def restart_sidecar(process: SidecarProcess, db_url: str, redis_url: str) -> SidecarProcess:
    """Start the sidecar again on its port (the switch's hook and CDR URLs name it)."""
    port = int(process.url.rsplit(":", 1)[1])
    log = ROOT / ".data" / f"sidecar-{port}.log"
    if log.exists():  # start_sidecar writes the same file afresh: keep the first run's
        log.rename(log.with_suffix(".before-restart.log"))
    fresh = start_sidecar(db_url, redis_url, port=port, **SIDECAR_ENV)
    process.proc = fresh.proc
    return process


@pytest.fixture(scope="session")
def uas(e2e_dir: Path) -> Iterator[Uas]:
    server = Uas(e2e_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def switch(
    install: Install, e2e_dir: Path, uas: Uas, sidecar: SidecarProcess
) -> Iterator[FreeSwitch]:
    run = e2e_dir / "freeswitch"
    run.mkdir()
    link = SidecarLink(sidecar.url, FS_USER, FS_PASSWORD)
    hook_env = {"APOLO_SIDECAR_URL": sidecar.url, "APOLO_FS_USER": FS_USER,
                "APOLO_FS_PASSWORD": FS_PASSWORD}  # fmt: skip
    fs = FreeSwitch(install, run, Ports(), hook_env)
    build_conf(install, run, fs.ports, fs.esl_password, uas.port, link)
    fs.start()
    yield fs
    fs.stop()


@pytest.fixture
def e2e(
    switch: FreeSwitch, uas: Uas, sidecar: SidecarProcess, db_url: str, seed: Seed,
    tmp_path: Path,
) -> Iterator[Harness]:  # fmt: skip
    if switch.proc is None or switch.proc.poll() is not None:
        switch.start()  # a case that stopped it failed before starting it again
    harness = Harness(switch, uas, sidecar.url, db_url, seed, tmp_path)
    yield harness
    harness.idle()


class Control:
    """``apolo control`` as its own process, driving the session's switch."""

    def __init__(self, switch: FreeSwitch, db_url: str, redis_url: str, log: Path, **env: str):
        environ = {
            **os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
            "APOLO_FREESWITCH": switch.esl_address, "APOLO_RESERVATION_SECONDS": str(BLOCK),
            "APOLO_CONTROL_TICK_SECONDS": "0.2", "APOLO_CONTROL_BACKOFF_MAX_SECONDS": "0.5",
            "APOLO_LOG_LEVEL": "INFO", **env,
        }  # fmt: skip
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar.cli", "control"], env=environ, cwd=ROOT,
            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        stop_process(self.proc, 10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def control_factory(
    switch: FreeSwitch, db_url: str, redis_url: str, tmp_path: Path
) -> Iterator[Any]:
    started: list[Control] = []

    def start(**env: str) -> Control:
        worker = Control(switch, db_url, redis_url, tmp_path / f"control{len(started)}.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
