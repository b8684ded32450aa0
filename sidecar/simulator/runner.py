"""Plays calls against a running sidecar the way FreeSWITCH does.

Each call comes from a PBX at ``source_ip`` (its INVITE's source address, ``sip_network_ip``;
``apolo demo load`` declares the trunk that bills it by caller ID) with the caller's number as
caller ID: ``POST /v1/authorize``; if authorized, talk for min(duration, max_duration) (a real
sleep, divided by the speed-up), then post the CDR of the leg that ran the dialplan as
``text/xml`` with ``?uuid=a_<uuid>``; if denied, post the unanswered CDR FreeSWITCH writes for
a rejected call. Some calls post their CDR twice, as FreeSWITCH does when it retries after a
lost answer, to exercise the sidecar's idempotency.

Like the switch, an authorization that fails (no answer, not 200) refuses the call (the hook
fails closed), and a CDR post is tried ``1 + cdr_retries`` times ``cdr_retry_delay`` apart,
as mod_xml_cdr's ``retries`` and ``delay`` do; when every try failed the document goes to
``spool_dir`` as ``a_<uuid>.cdr.xml`` (its err-log-dir) for ``apolo cdr replay``. With
``rate`` calls start at that steady pace instead of back to back. With ``channels`` (an
event-socket switch stand-in such as the tests' ESL peer), each call rings, answers with
the dialplan's ``sched_hangup`` and ends there, so ``apolo control`` sees it; a hangup the
switch schedules then ends the talk early, in real time.
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
from pathlib import Path
from typing import Any, Final, Protocol
from uuid import uuid4

import requests

from sidecar.freeswitch.commands import sched_hangup_seconds
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
    duration_max: float = 0.0  # when above duration: talk drawn in [duration, duration_max]
    rate: float = 0.0  # calls started per second; 0: each worker starts the next at once
    cdr_retries: int = 0  # mod_xml_cdr's "retries"
    cdr_retry_delay: float = 2.0  # mod_xml_cdr's "delay", seconds between tries
    spool_dir: str = ""  # mod_xml_cdr's "err-log-dir"; empty: a CDR never delivered is lost
    authorize_timeout: float = HTTP_TIMEOUT[1]  # the hook's budget (APOLO_TIMEOUT_MS)
    cdr_timeout: float = HTTP_TIMEOUT[1]  # mod_xml_cdr's "timeout"
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
        if self.rate < 0 or self.cdr_retries < 0 or self.cdr_retry_delay < 0:
            raise ValueError("rate, cdr_retries and cdr_retry_delay must be >= 0")


class Channels(Protocol):
    """A switch's channels, as the simulated calls drive them (tests.doubles.esl_peer)."""

    def add_channel(self, uuid: str) -> None: ...

    def answer(self, uuid: str, answered_at: float, hangup_in: int | None = None) -> None: ...

    def ended_at(self, uuid: str) -> tuple[float, str] | None: ...

    def end_call(self, uuid: str, at: float) -> tuple[float, str]: ...

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None: ...


@dataclass(frozen=True)
class PlannedCall:
    index: int
    caller: str
    callee: str
    post_twice: bool
    talk: float = 0.0


def plan_call(cfg: SimConfig, index: int) -> PlannedCall:
    """Call ``index`` of a run: the same for a given seed, whatever the thread scheduling."""
    rng = random.Random(f"{cfg.seed}:{index}")
    caller, callee = rng.choice(cfg.callers), rng.choice(cfg.destinations)
    post_twice = rng.random() < cfg.duplicate_ratio
    talk = cfg.duration
    if cfg.duration_max > cfg.duration:
        talk = rng.uniform(cfg.duration, cfg.duration_max)
    return PlannedCall(index, caller, callee, post_twice, talk)


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
    started_at: float = 0.0  # epoch seconds
    authorized_at: float = 0.0  # when the authorization's answer (or failure) came
    cdr_tries: list[tuple[float, bool]] = field(default_factory=list)  # (epoch, delivered)
    spooled: bool = False
    cause: str = ""

    @property
    def cdr_retried(self) -> bool:
        """Some CDR post of this call needed more than one try."""
        return any(not ok for _, ok in self.cdr_tries)


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
    cdr_retried: int = 0
    spooled: int = 0
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
        self.cdr_retried += r.cdr_retried
        self.spooled += r.spooled
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
            f"cdrs retried: {self.cdr_retried} (spooled to err-log-dir {self.spooled})",
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
        resp = session.post(
            f"{cfg.url}/v1/authorize", json=body,
            timeout=(min(HTTP_TIMEOUT[0], cfg.authorize_timeout), cfg.authorize_timeout),
        )  # fmt: skip
    except requests.RequestException as exc:
        result.authorize_error = f"{type(exc).__name__}: {exc}"
        result.authorized_at = time.time()
        return None
    result.authorized_at = time.time()
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
            headers={"Content-Type": "text/xml"},
            timeout=(min(HTTP_TIMEOUT[0], cfg.cdr_timeout), cfg.cdr_timeout),
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


def _post_retrying(
    session: requests.Session, cfg: SimConfig, r: CallResult, xml: bytes
) -> dict[str, Any] | None:
    """One delivery as mod_xml_cdr makes it: tries ``delay`` apart, then err-log-dir."""
    for attempt in range(cfg.cdr_retries + 1):
        if attempt:
            time.sleep(cfg.cdr_retry_delay)
        answer, error = _post_cdr(session, cfg, r.uuid, xml)
        r.posted += 1
        r.cdr_tries.append((time.time(), answer is not None))
        if answer is not None:
            return answer
        r.errors.append(error or "no answer")
    if cfg.spool_dir:
        spooled = Path(cfg.spool_dir) / f"a_{r.uuid}.cdr.xml"
        spooled.write_bytes(xml)
        r.spooled = True
    return None


def _deliver(session: requests.Session, cfg: SimConfig, call: PlannedCall, r: CallResult,
             xml: bytes) -> None:  # fmt: skip
    first_id = None
    for attempt in range(2 if call.post_twice else 1):
        tries = len(r.cdr_tries)
        answer = _post_retrying(session, cfg, r, xml)
        if answer is None:
            return  # spooled (or lost): mod_xml_cdr posts it no more
        if answer.get("duplicate") is True and attempt == 0 and len(r.cdr_tries) > tries + 1:
            answer = {**answer, "duplicate": False}  # an earlier try committed, its answer lost
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


def _talk_on(channels: Channels, uuid: str, max_duration: int, talk: float) -> tuple[int, int, str]:
    """Answer on the switch, talk in real time until the caller or the switch hangs up:
    (answer epoch µs, billusec, cause)."""
    answered = time.time()
    channels.answer(uuid, answered, sched_hangup_seconds(max_duration))
    want_end = answered + talk
    while time.time() < want_end and channels.ended_at(uuid) is None:
        time.sleep(min(0.05, max(0.0, want_end - time.time())))
    end, cause = channels.end_call(uuid, min(want_end, time.time()))
    return round(answered * 1e6), max(1, round((end - answered) * 1e6)), cause


def play_call(
    session: requests.Session,
    cfg: SimConfig,
    call: PlannedCall,
    deadline: float,
    channels: Channels | None = None,
) -> CallResult:
    result = CallResult(uuid=str(uuid4()), started_at=time.time())
    if channels is not None:
        channels.add_channel(result.uuid)  # ringing while the dialplan asks the sidecar
    answer = _authorize(session, cfg, call, result)
    max_duration = int(answer.get("max_duration") or 0) if answer is not None else 0
    if answer is not None and answer.get("authorized") is True and max_duration > 0:
        result.authorized, result.reason = True, "authorized"
        talk = min(call.talk or cfg.duration, float(max_duration))
        if channels is not None:
            answered_us, billusec, result.cause = _talk_on(
                channels, result.uuid, max_duration, talk
            )
        else:
            answered_us, billusec, result.cause = _now_us(), round(talk * 1e6), "NORMAL_CLEARING"
            time.sleep(max(0.0, min(talk / cfg.speedup, deadline - time.monotonic())))
        xml = build_cdr(result.uuid, call.caller, call.callee, answered_us, billusec,
                        cfg.identity, hangup_cause=result.cause)  # fmt: skip
    else:
        if answer is not None and answer.get("authorized") is True:
            result.authorized, result.reason = True, "authorized"  # no time to give
        else:
            result.reason = str(answer.get("reason")) if answer is not None else "error"
        result.cause = REJECT_CAUSE
        if channels is not None:
            channels.hangup(result.uuid, REJECT_CAUSE)
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


def run(
    cfg: SimConfig,
    on_result: Callable[[CallResult], None] | None = None,
    channels: Channels | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Play ``cfg.calls`` calls on ``cfg.concurrency`` workers, each with its own session;
    no call starts once ``stop`` is set (the calls under way finish)."""
    stop = stop or threading.Event()
    summary = Summary(planned=cfg.calls)
    if cfg.spool_dir:
        Path(cfg.spool_dir).mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    take = _counter(cfg.calls)
    started = time.monotonic()
    deadline = started + cfg.timeout

    def worker() -> None:
        with requests.Session() as session:
            session.auth = cfg.auth
            while time.monotonic() < deadline and not stop.is_set():
                if (index := take()) is None:
                    return
                if cfg.rate > 0:  # call n starts n / rate seconds in, or late if all are busy
                    stop.wait(max(0.0, started + index / cfg.rate - time.monotonic()))
                    if time.monotonic() >= deadline or stop.is_set():
                        return
                result = play_call(session, cfg, plan_call(cfg, index), deadline, channels)
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
