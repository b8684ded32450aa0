"""The example HA configurations in deploy/ are read by the engines themselves: HAProxy's
checker, Patroni's validator, a Sentinel started on the file. Skipped where an engine is not
installed (`make ha-drill` installs them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib
from conftest import ROOT, free_port

DEPLOY = ROOT / "deploy"
PATH = os.environ.get("PATH", "") + ":/usr/sbin"


def _need(program: str) -> str:
    found = shutil.which(program, path=PATH)
    if found is None:
        pytest.skip(f"{program} is not installed")
    return found


SECRET = re.compile(r"(requirepass|masterauth|-pass\b|password\s*[:=]|stats auth)", re.I)
PLACEHOLDER = re.compile(r"@[A-Z_]+@|\$\{[A-Z_]+\}")


def _no_secret(text: str) -> None:
    """A line that sets a password names a placeholder (@NAME@, ${NAME}), never a value."""
    for line in text.splitlines():
        if not line.lstrip().startswith("#") and SECRET.search(line):
            assert PLACEHOLDER.search(line), f"a secret in the repo? {line!r}"


def test_haproxy_example_is_valid_and_fails_when_broken(tmp_path: Path) -> None:
    haproxy = _need("haproxy")
    text = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    _no_secret(text)
    ok = subprocess.run([haproxy, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(text.replace("http-check expect status 200", "http-check expect nonsense"))
    assert subprocess.run([haproxy, "-c", "-f", str(broken)], capture_output=True).returncode != 0
    # what the drill and the docs rely on
    for needle in ("OPTIONS /primary", "OPTIONS /replica", "GET /healthz", "on-marked-down "
                   "shutdown-sessions", "retry-on conn-failure empty-response"):  # fmt: skip
        assert needle in text


def test_patroni_example_passes_its_validator(tmp_path: Path) -> None:
    patroni = _need("patroni")
    text = (DEPLOY / "patroni" / "patroni.yml").read_text()
    _no_secret(text)
    assert "synchronous_mode: true" in text
    # the validator checks that listen addresses can be bound here: use free loopback ports
    local = re.sub(r"(listen: )10\.0\.0\.11:8008", rf"\g<1>127.0.0.1:{free_port()}", text)
    local = re.sub(r"(listen: )10\.0\.0\.11:5432", rf"\g<1>127.0.0.1:{free_port()}", local)
    config = tmp_path / "patroni.yml"
    config.write_text(local)
    ok = subprocess.run([patroni, "--validate-config", str(config)], capture_output=True,
                        text=True, cwd=tmp_path)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    config.write_text(local.replace("ttl: 30", "ttl: thirty"))
    bad = subprocess.run([patroni, "--validate-config", str(config)], capture_output=True,
                         cwd=tmp_path)  # fmt: skip
    assert bad.returncode != 0


def test_sentinel_example_runs_once_its_placeholders_are_filled(tmp_path: Path) -> None:
    sentinel = _need("redis-sentinel")
    text = (DEPLOY / "redis" / "sentinel.conf").read_text()
    _no_secret(text)
    assert "@REDIS_PASSWORD@" in text and "@SENTINEL_PASSWORD@" in text
    port = free_port()
    filled = (
        text.replace("@REDIS_PASSWORD@", "redis-pw").replace("@SENTINEL_PASSWORD@", "sentinel-pw")
        .replace("port 26379", f"port {port}").replace("bind 10.0.0.31 127.0.0.1", "bind 127.0.0.1")
        .replace("dir /var/lib/redis", f"dir {tmp_path}")
    )  # fmt: skip
    config = tmp_path / "sentinel.conf"
    config.write_text(filled)
    proc = subprocess.Popen([sentinel, str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        client = redis_lib.Redis(port=port, password="sentinel-pw", decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                master = client.sentinel_master("apolo")
                break
            except (OSError, redis_lib.ConnectionError):
                assert time.monotonic() < deadline, "sentinel did not start"
                time.sleep(0.1)
        assert (master["ip"], master["port"], master["quorum"]) == ("10.0.0.31", 6379, 2)
        assert master["down-after-milliseconds"] == 5000
        with pytest.raises(redis_lib.AuthenticationError):
            redis_lib.Redis(port=port, password="wrong").ping()
    finally:
        proc.terminate()
        proc.wait(10)


def test_env_example_names_every_ha_variable() -> None:
    text = (DEPLOY / "systemd" / "apolo.env.example").read_text()
    for name in ("APOLO_REPORTS_DATABASE_URL", "APOLO_REDIS_SENTINELS", "APOLO_REDIS_MASTER",
                 "target_session_attrs=read-write"):  # fmt: skip
        assert name in text
