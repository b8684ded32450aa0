"""Authorization latency and throughput through the real sidecar, against its floors.

Floors, measured in the same run on the same machine: one PostgreSQL round trip
(``SELECT 1`` on a kept connection) and one trivial HTTP request (a bare WSGI app under
the same gunicorn settings, driven by the same load generator at the same concurrency).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.data import PBX_IDENTITY
from bench.loadgen import Spec, percentile
from bench.procs import Server, load


@dataclass
class Call:
    uuid: str
    caller: str
    callee: str
    authorized: bool = False
    reason: str = ""


@dataclass
class AuthorizeRun:
    figures: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)


def pg_round_trip(url: str, count: int) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(50):
            conn.execute("SELECT 1").fetchone()
        times = []
        for _ in range(count):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - started)
    times.sort()
    return {
        "p50_us": round(percentile(times, 50) * 1e6, 1),
        "p99_us": round(percentile(times, 99) * 1e6, 1),
    }


def make_calls(count: int, accounts: list[str], numbers: list[str], offset: int) -> list[Call]:
    return [
        Call(
            str(uuid.uuid4()),
            accounts[(offset + i) % len(accounts)],
            numbers[(offset + i) % len(numbers)],
        )
        for i in range(count)
    ]


def authorize_spec(server: Server, auth: tuple[str, str], calls: list[Call], **kw: Any) -> Spec:
    requests = [
        (
            "/v1/authorize",
            "application/json",
            json.dumps(
                {"uuid": c.uuid, "caller": c.caller, "callee": c.callee, "variables": PBX_IDENTITY}
            ).encode(),
        )
        for c in calls
    ]
    return Spec("127.0.0.1", server.port, requests, auth=auth, keep_answers=True, **kw)


def record_answers(calls: list[Call], result: dict[str, Any]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    result.pop("status_of", None)
    for key, body in result.pop("answers", {}).items():
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        call = calls[int(key)]
        call.authorized = answer.get("authorized") is True
        call.reason = str(answer.get("reason") or answer.get("error", {}).get("code", "?"))
        reasons[call.reason] = reasons.get(call.reason, 0) + 1
    return reasons


def floor_http(bare: Server, concurrency: int, count: int, max_seconds: float) -> dict[str, Any]:
    body = b'{"uuid":"x","caller":"1","callee":"2"}'
    spec = Spec(
        "127.0.0.1",
        bare.port,
        [("/", "application/json", body)] * count,
        concurrency=concurrency,
        max_seconds=max_seconds,
    )
    return load(spec)


def warm_up(sidecar: Server, auth: tuple[str, str], calls: list[Call]) -> None:
    """Enough parallel calls that every worker has built its rate index before timing."""
    load(authorize_spec(sidecar, auth, calls, concurrency=16, max_seconds=300), timeout=400)


def saturation(
    sidecar: Server,
    bare: Server,
    auth: tuple[str, str],
    accounts: list[str],
    numbers: list[str],
    levels: tuple[int, ...],
    count: int,
    max_seconds: float,
) -> AuthorizeRun:
    run = AuthorizeRun()
    offset = 0
    for level in levels:
        calls = make_calls(count, accounts, numbers, offset)
        offset += count
        result = load(
            authorize_spec(sidecar, auth, calls, concurrency=level, max_seconds=max_seconds)
        )
        result["reasons"] = record_answers(calls, result)
        run.calls.extend(c for c in calls if c.reason)
        floor = floor_http(bare, level, count, max_seconds)
        result["floor_http"] = {k: floor[k] for k in ("per_second", "p50_ms", "p99_ms", "errors")}
        result["ratio_throughput_to_floor"] = round(result["per_second"] / floor["per_second"], 3)
        result["ratio_p50_to_floor"] = round(result["p50_ms"] / max(floor["p50_ms"], 1e-3), 2)
        run.figures[f"inflight_{level}"] = result
    return run
