"""Helpers of the control-worker tests: settings, a running controller, an adjustable clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from conftest import FS_AUTH, call_body, make_app
from doubles.esl_peer import EslPeer
from psycopg.rows import dict_row

from sidecar.config import load_settings
from sidecar.control.decide import Policy
from sidecar.control.runner import Controller
from sidecar.control.settings import ControlSettings, Switch

BLOCK = 300  # APOLO_RESERVATION_SECONDS with the worker


@dataclass
class Clock:
    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def control_settings(
    db_url: str, redis_url: str, peers: list[EslPeer], **overrides: Any
) -> ControlSettings:
    policy = Policy(
        extend_threshold=60,
        block_seconds=BLOCK,
        max_call_seconds=3600,
        kill_after_seconds=2,
        announce_file=overrides.pop("announce_file", ""),
        announce_seconds=30,
    )
    values: dict[str, Any] = {
        "event_format": "json",
        "tick_seconds": 0.05,
        "retry_seconds": 0.2,
        "reconcile_seconds": 0.2,
        "reconcile_grace_seconds": 60.0,
        "backoff_max_seconds": 0.4,
        "command_timeout": 2.0,
        **overrides,
    }
    base = load_settings(database_url=db_url, redis_url=redis_url, reservation_seconds=BLOCK)
    switches = tuple(Switch("127.0.0.1", p.port, p.password) for p in peers)
    return ControlSettings(base=base, switches=switches, policy=policy, **values)


@contextmanager
def running(settings: ControlSettings, clock: Clock | None = None) -> Iterator[Controller]:
    controller = Controller(settings, clock)
    controller.start()
    try:
        for worker in controller.workers:
            assert worker.connected.wait(5), f"{worker.node} did not connect"
        yield controller
    finally:
        controller.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def authorize(client: Any, uuid: str, account: str, callee: str = "51987654321") -> dict[str, Any]:
    resp = client.post(
        "/v1/authorize",
        json=call_body(uuid, account, callee),
        auth=FS_AUTH,
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def reservation(db_url: str, uuid: str) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        row = c.execute("SELECT * FROM reservations WHERE call_uuid = %s", (uuid,)).fetchone()
    assert row is not None
    return row


def audit(db_url: str, uuid: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as c:
        return c.execute(
            "SELECT * FROM control_audit WHERE call_uuid = %s ORDER BY id", (uuid,)
        ).fetchall()


def money(value: Any) -> Decimal:
    return Decimal(str(value))


# fixtures the control tests share; a test module imports them to use them
@pytest.fixture(name="app")
def control_app(db_url: str, redis_url: str) -> Iterator[Any]:
    """The sidecar app with BLOCK-second reservations, as under the worker."""
    application = make_app(db_url, redis_url, reservation_seconds=BLOCK)
    yield application
    application.extensions["apolo_rates"].stop()


@pytest.fixture(name="peer")
def esl_peer() -> Iterator[EslPeer]:
    p = EslPeer()
    yield p
    p.close()
