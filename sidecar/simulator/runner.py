"""Plays calls against a running sidecar the way FreeSWITCH does.

Each call comes from a PBX at ``source_ip`` (its INVITE's source address, ``sip_network_ip``;
``apolo demo load`` declares the trunk that bills it by caller ID) with the caller's number as
caller ID: ``POST /v1/authorize``; if authorized, talk for min(duration, max_duration) (a real
sleep, divided by the speed-up), then post the CDR of the leg that ran the dialplan as
``text/xml`` with ``?uuid=a_<uuid>``; if denied, post the unanswered CDR FreeSWITCH writes for
a rejected call. Some calls post their CDR twice, as FreeSWITCH does when it retries after a
lost answer, to exercise the sidecar's idempotency.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from uuid import uuid4

import requests

from sidecar.simulator.cdr_template import build_cdr

HTTP_TIMEOUT: Final = (5.0, 30.0)  # connect, read
REJECT_CAUSE: Final = "CALL_REJECTED"
_ERROR_SAMPLES: Final = 5


@dataclass(frozen=True)
class SimConfig:
    url: str
    auth: tuple[str, str]
    calls: int
    concurrency: int
    callers: tuple[str, ...]
    destinations: tuple[str, ...]
    duration: float = 2.0  # talk seconds per call
    seed: int = 1
    speedup: float = 1.0
    timeout: float = 300.0  # no call starts after this many seconds
    duplicate_ratio: float = 0.1
    source_ip: str = "192.0.2.10"  # where the simulated INVITEs come from

    @property
    def identity(self) -> dict[str, str]:
        """The channel variables FreeSWITCH would report about who is calling."""
        return {"sip_network_ip": self.source_ip}

    def __post_init__(self) -> None:
        if self.calls < 0 or self.concurrency < 1:
            raise ValueError("calls must be >= 0 and concurrency >= 1")
        if not self.callers or not self.destinations:
            raise ValueError("at least one caller and one destination are needed")
        if self.duration < 0 or self.speedup <= 0 or self.timeout <= 0:
            raise ValueError("duration must be >= 0, speedup and timeout > 0")


@dataclass(frozen=True)
class PlannedCall:
    index: int
    caller: str
    callee: str
    post_twice: bool


def plan_call(cfg: SimConfig, index: int) -> PlannedCall:
    """Call ``index`` of a run: the same for a given seed, whatever the thread scheduling."""
    rng = random.Random(f"{cfg.seed}:{index}")
    return PlannedCall(
        index,
        rng.choice(cfg.callers),
        rng.choice(cfg.destinations),
        rng.random() < cfg.duplicate_ratio,
    )


@dataclass
class CallResult:
    uuid: str
    authorized: bool = False
    reason: str = ""
    authorize_error: str | None = None
    authorize_ms: float | None = None
    posted: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    charged: Decimal = Decimal(0)


@dataclass
class Summary:
    planned: int
    started: int = 0
    authorized: int = 0
    denied: Counter[str] = field(default_factory=Counter)
    authorize_errors: int = 0
    posted: int = 0
    accepted: int = 0
    duplicates: int = 0
    cdr_errors: int = 0
    charged: Decimal = Decimal("0.0000")
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def add(self, r: CallResult) -> None:
        self.started += 1
        if r.authorized:
            self.authorized += 1
        elif r.authorize_error is None:
            self.denied[r.reason] += 1
        else:
            self.authorize_errors += 1
            self._sample(f"authorize {r.uuid}: {r.authorize_error}")
        if r.authorize_ms is not None:
            self.latencies_ms.append(r.authorize_ms)
        self.posted += r.posted
        self.accepted += r.accepted
        self.duplicates += r.duplicates
        self.cdr_errors += len(r.errors)
        for error in r.errors:
            self._sample(f"cdr {r.uuid}: {error}")
        self.charged += r.charged

    def _sample(self, text: str) -> None:
        if len(self.error_samples) < _ERROR_SAMPLES:
            self.error_samples.append(text)

    @property
    def ok(self) -> bool:
        return self.cdr_errors == 0 and self.authorize_errors == 0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the authorize latencies (0 when there were none)."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def lines(self) -> list[str]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.denied.items())) or "-"
        out = [
            f"calls: {self.planned} (started {self.started})",
            f"authorized: {self.authorized}",
            f"denied: {sum(self.denied.values())} ({reasons})",
            f"authorize errors: {self.authorize_errors}",
            f"cdrs posted: {self.posted} (accepted {self.accepted}, "
            f"duplicates {self.duplicates}, errors {self.cdr_errors})",
            f"total charged: {self.charged}",
            f"authorize latency ms: p50 {self.percentile(50):.1f}, "
            f"p95 {self.percentile(95):.1f}, max {self.percentile(100):.1f}",
            f"elapsed: {self.elapsed:.1f} s",
        ]
        return out + [f"error: {e}" for e in self.error_samples]


def _now_us() -> int:
    return time.time_ns() // 1000


def _authorize(
    session: requests.Session, cfg: SimConfig, call: PlannedCall, result: CallResult
) -> dict[str, Any] | None:
    body: dict[str, Any] = {"uuid": result.uuid, "caller": call.caller, "callee": call.callee,
                            "variables": cfg.identity}  # fmt: skip
    started = time.perf_counter()
    try:
        resp = session.post(f"{cfg.url}/v1/authorize", json=body, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        result.authorize_error = f"{type(exc).__name__}: {exc}"
        return None
    result.authorize_ms = (time.perf_counter() - started) * 1000
    try:
        answer = resp.json() if resp.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "authorized" not in answer:
        result.authorize_error = f"HTTP {resp.status_code}: {resp.text[:300]}"
        return None
    return answer


def _post_cdr(
    session: requests.Session, cfg: SimConfig, uuid: str, xml: bytes
) -> tuple[dict[str, Any] | None, str | None]:
    try:
        resp = session.post(
            f"{cfg.url}/freeswitch/cdr", params={"uuid": f"a_{uuid}"}, data=xml,
            headers={"Content-Type": "text/xml"}, timeout=HTTP_TIMEOUT,
        )  # fmt: skip
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not 200 <= resp.status_code < 300:
        return None, f"HTTP {resp.status_code}: {resp.text[:300]}"
    try:
        answer = resp.json()
    except ValueError:
        return None, f"HTTP {resp.status_code} answer is not JSON"
    return (answer, None) if isinstance(answer, dict) else (None, "answer is not an object")


def _deliver(session: requests.Session, cfg: SimConfig, call: PlannedCall, r: CallResult,
             xml: bytes) -> None:  # fmt: skip
    first_id = None
    for attempt in range(2 if call.post_twice else 1):
        answer, error = _post_cdr(session, cfg, r.uuid, xml)
        r.posted += 1
        if answer is None:
            r.errors.append(error or "no answer")
            continue
        if answer.get("duplicate") is True:
            r.duplicates += 1
            if attempt == 0:
                r.errors.append("first post of a new CDR answered duplicate")
            elif answer.get("cdr_id") not in (None, first_id):
                r.errors.append(f"repeat post names cdr {answer.get('cdr_id')}, not {first_id}")
            continue
        if attempt > 0:
            r.errors.append("repeat post was not recognised as a duplicate")
        r.accepted += 1
        first_id = answer.get("cdr_id")
        try:
            r.charged += Decimal(str(answer.get("cost", "0")))
        except InvalidOperation:
            r.errors.append(f"cost is not a decimal: {answer.get('cost')!r}")


def play_call(
    session: requests.Session, cfg: SimConfig, call: PlannedCall, deadline: float
) -> CallResult:
    result = CallResult(uuid=str(uuid4()))
    answer = _authorize(session, cfg, call, result)
    if answer is not None and answer.get("authorized") is True:
        result.authorized, result.reason = True, "authorized"
        talk = min(cfg.duration, float(answer.get("max_duration") or 0))
        answered_at = _now_us()
        time.sleep(max(0.0, min(talk / cfg.speedup, deadline - time.monotonic())))
        xml = build_cdr(result.uuid, call.caller, call.callee, answered_at,
                        round(talk * 1_000_000), cfg.identity)  # fmt: skip
    else:
        result.reason = str(answer.get("reason")) if answer is not None else "error"
        xml = build_cdr(result.uuid, call.caller, call.callee, _now_us(), 0, cfg.identity,
                        hangup_cause=REJECT_CAUSE)  # fmt: skip
    _deliver(session, cfg, call, result, xml)
    return result


def _counter(limit: int) -> Callable[[], int | None]:
    lock, numbers = threading.Lock(), itertools.count()

    def take() -> int | None:
        with lock:
            n = next(numbers)
        return n if n < limit else None

    return take


def run(cfg: SimConfig, on_result: Callable[[CallResult], None] | None = None) -> Summary:
    """Play ``cfg.calls`` calls on ``cfg.concurrency`` workers, each with its own session."""
    summary = Summary(planned=cfg.calls)
    lock = threading.Lock()
    take = _counter(cfg.calls)
    started = time.monotonic()
    deadline = started + cfg.timeout

    def worker() -> None:
        with requests.Session() as session:
            session.auth = cfg.auth
            while time.monotonic() < deadline and (index := take()) is not None:
                result = play_call(session, cfg, plan_call(cfg, index), deadline)
                with lock:
                    summary.add(result)
                    if on_result is not None:
                        on_result(result)

    workers = min(cfg.concurrency, max(cfg.calls, 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sim") as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    summary.elapsed = time.monotonic() - started
    return summary
