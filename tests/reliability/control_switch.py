"""A switch under mid-call control: calls authorized, answered on the ESL peer, cut or extended.

Each call is a channel of the ESL test peer (``doubles.esl_peer``): it rings, is authorized
by the sidecar, answers (CHANNEL_ANSWER, with the dialplan's ``sched_hangup`` at the paid
time), talks, and ends when the caller hangs up, when its scheduled hangup fires (the
control worker moves it after each extension) or when the worker kills it; then the switch
posts its CDR like ``switch.Switch`` (retries, err-log-dir).

The answer is dated ``lead`` seconds before the end of the paid time, so the worker has to
extend every call within a few seconds of wall time (``APOLO_EXTEND_THRESHOLD`` above the
largest lead): a call the worker does not extend is cut at its paid time by the switch.
"""

from __future__ import annotations

import random
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from conftest import FS_AUTH
from doubles.esl_peer import EslPeer

from reliability.switch import Call, Switch
from sidecar.freeswitch.commands import sched_hangup_seconds
from sidecar.simulator.cdr_template import build_cdr


@dataclass
class ControlledCall(Call):
    caller: str = ""
    answered_us: int = 0  # the switch's answer time (dated back by the paid time - lead)
    answered_wall: float = 0.0  # when the answer happened
    ended_wall: float = 0.0
    cause: str = ""


@dataclass
class ControlledSwitch:
    """Calls from ``lines`` (one ``Switch`` per caller, call n on line n % len) on ``peer``."""

    peer: EslPeer
    lines: list[Switch]
    lead: tuple[float, float] = (3.0, 9.0)  # paid seconds left at the answer
    talk: tuple[float, float] = (1.0, 7.0)  # how long the caller would talk (wall seconds)
    poll: float = 0.02
    calls: list[ControlledCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def play(self, n: int, rng: random.Random) -> ControlledCall:
        line = self.lines[n % len(self.lines)]
        call = ControlledCall(uuid=str(uuidlib.uuid4()), caller=line.caller)
        with self._lock:
            self.calls.append(call)
        self.peer.add_channel(call.uuid)  # ringing while the dialplan asks the sidecar
        with requests.Session() as session:
            session.auth = FS_AUTH
            line.authorize(session, call, n)
            if not call.authorized or call.max_duration <= 1:
                call.cause = "CALL_REJECTED"
                self.peer.hangup(call.uuid, call.cause)
                call.ended_wall = time.time()
                xml = build_cdr(
                    call.uuid, line.caller, line.callee, time.time_ns() // 1000, 0,
                    hangup_cause="CALL_REJECTED",
                )  # fmt: skip
                line.post_cdr(session, call, xml, n)
                return call
            lead = rng.uniform(*self.lead)
            talk = rng.uniform(*self.talk)
            call.answered_us = int((time.time() - call.max_duration + lead) * 1e6)
            call.answered_wall = time.time()
            self.peer.answer(
                call.uuid, call.answered_us / 1e6, sched_hangup_seconds(call.max_duration)
            )
            want_end = call.answered_wall + talk
            while time.time() < want_end and self.peer.ended_at(call.uuid) is None:
                time.sleep(self.poll)
            end, call.cause = self.peer.end_call(call.uuid, min(want_end, time.time()))
            call.ended_wall = time.time()
            call.billusec = max(1, int(end * 1e6) - call.answered_us)
            xml = build_cdr(
                call.uuid, line.caller, line.callee, call.answered_us, call.billusec,
                hangup_cause=call.cause,
            )  # fmt: skip
            line.post_cdr(session, call, xml, n)
        return call

    def run(
        self, calls: int, concurrency: int, seed: int, on_call: Callable[[int], None] | None = None
    ) -> list[ControlledCall]:
        def one(i: int) -> ControlledCall:
            if on_call is not None:
                on_call(i)
            return self.play(i, random.Random(f"{seed}:{i}"))

        with ThreadPoolExecutor(concurrency, thread_name_prefix="fs") as pool:
            return list(pool.map(one, range(calls)))

    def live(self) -> list[ControlledCall]:
        """Calls answered and not ended yet."""
        with self._lock:
            return [c for c in self.calls if c.answered_wall and not c.ended_wall]


@dataclass
class HangupWatch:
    """Samples the switch: an answered call is never left without a scheduled hangup.

    A call may lose its hangup for a moment (the worker deletes the pending one, then
    schedules the moved one), and while a fault keeps the worker away (``fault_windows``,
    end None while it lasts); it must have one again within ``tolerance`` s after that.
    """

    peer: EslPeer
    fault_windows: list[list[float | None]]
    tolerance: float = 2.0
    interval: float = 0.05
    violations: dict[str, float] = field(default_factory=dict)
    _since: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _allowed_until(self, since: float) -> float:
        until = since + self.tolerance
        for start, end in self.fault_windows:
            if end is None:
                return float("inf")
            assert start is not None
            if start <= until and end + self.tolerance > until:
                until = end + self.tolerance
        return until

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.time()
            bare = self.peer.unscheduled()
            self._since = {u: self._since.get(u, now) for u in bare}
            for uuid, since in self._since.items():
                if now > self._allowed_until(since):
                    self.violations.setdefault(uuid, now - since)

    def __enter__(self) -> HangupWatch:
        self._thread = threading.Thread(target=self._run, name="hangup-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
