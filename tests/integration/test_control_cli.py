"""``apolo control`` as a real process: connects, subscribes, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from doubles.esl_peer import EslPeer

pytestmark = pytest.mark.integration


def test_control_process_connects_and_stops(db_url: str, redis_url: str) -> None:
    peer = EslPeer()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "APOLO_FREESWITCH": peer.address,
        "APOLO_CONTROL_EVENT_FORMAT": "plain",
        "APOLO_LOG_LEVEL": "WARNING",
    }
    code = "from sidecar.cli.control_cmd import control; control()"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while peer.subscribed() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert peer.commands[:2] == [
            "auth ClueCon",
            "event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE HEARTBEAT",
        ]
        # the worker asks for the live channels right after subscribing, not before
        while "api show channels as json" not in peer.commands and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "api show channels as json" in peer.commands
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        peer.close()


def test_control_process_refuses_an_empty_switch_list(db_url: str, redis_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "APOLO_FREESWITCH": ""}
    code = "from sidecar.cli.control_cmd import control; control()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, timeout=30
    )
    assert done.returncode != 0
    assert b"APOLO_FREESWITCH names no switch" in done.stderr
