"""Settings of ``apolo control``, from the environment (defaults documented here)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sidecar.config import Settings, load_settings
from sidecar.control.decide import Policy


@dataclass(frozen=True)
class Switch:
    host: str
    port: int
    password: str

    @property
    def node(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ControlSettings:
    base: Settings
    switches: tuple[Switch, ...]
    policy: Policy
    event_format: str = "json"  # APOLO_CONTROL_EVENT_FORMAT: json | plain
    tick_seconds: float = 1.0  # APOLO_CONTROL_TICK_SECONDS
    retry_seconds: float = 10.0  # APOLO_EXTEND_RETRY_SECONDS: retry a refused extension
    reconcile_seconds: float = 60.0  # APOLO_RECONCILE_SECONDS
    reconcile_grace_seconds: float = 120.0  # APOLO_RECONCILE_GRACE_SECONDS
    backoff_max_seconds: float = 30.0  # APOLO_CONTROL_BACKOFF_MAX_SECONDS
    command_timeout: float = 5.0  # APOLO_CONTROL_COMMAND_TIMEOUT


def parse_switches(value: str) -> tuple[Switch, ...]:
    """``host:port:password,...``; the password is everything after the second colon."""
    switches = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, _, rest = item.partition(":")
        port, _, password = rest.partition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or not password:
            raise ValueError(f"APOLO_FREESWITCH entry must be host:port:password, got {host!r}")
        switches.append(Switch(host, int(port), password))
    return tuple(switches)


def load_control_settings(environ: dict[str, str] | None = None) -> ControlSettings:
    env = dict(os.environ if environ is None else environ)
    base = load_settings(env)

    def num(name: str, default: float) -> float:
        raw = env.get(name, "")
        value = float(raw) if raw else default
        if value < 0:
            raise ValueError(f"{name} must not be negative")
        return value

    policy = Policy(
        extend_threshold=int(num("APOLO_EXTEND_THRESHOLD", 60)),
        block_seconds=base.reservation_seconds,
        max_call_seconds=int(num("APOLO_MAX_CALL_SECONDS", 14400)),
        kill_after_seconds=num("APOLO_OVERRUN_KILL_SECONDS", 2),
        announce_file=env.get("APOLO_ANNOUNCE_FILE", ""),
        announce_seconds=int(num("APOLO_ANNOUNCE_SECONDS", 30)),
        cause=base.allotted_cause,
    )
    fmt = env.get("APOLO_CONTROL_EVENT_FORMAT", "json") or "json"
    if fmt not in ("json", "plain"):
        raise ValueError("APOLO_CONTROL_EVENT_FORMAT must be json or plain")
    return ControlSettings(
        base=base,
        switches=parse_switches(env.get("APOLO_FREESWITCH", "")),
        policy=policy,
        event_format=fmt,
        tick_seconds=num("APOLO_CONTROL_TICK_SECONDS", 1.0) or 1.0,
        retry_seconds=num("APOLO_EXTEND_RETRY_SECONDS", 10),
        reconcile_seconds=num("APOLO_RECONCILE_SECONDS", 60) or 60.0,
        reconcile_grace_seconds=num("APOLO_RECONCILE_GRACE_SECONDS", 120),
        backoff_max_seconds=num("APOLO_CONTROL_BACKOFF_MAX_SECONDS", 30) or 30.0,
        command_timeout=num("APOLO_CONTROL_COMMAND_TIMEOUT", 5) or 5.0,
    )
