"""A FreeSWITCH stand-in for load: the authorize hook and mod_xml_cdr with retries and spool.

Like the real switch it fails closed (an authorize that errors is a refused call), posts one
CDR per call (unanswered for refused calls, so a reservation committed behind a lost answer is
closed), tries its CDR URLs in turn ``retries + 1`` times with ``delay`` between rounds, and
when every try fails writes the document to its err-log-dir as ``a_<uuid>.cdr.xml``.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import requests
from conftest import FS_AUTH, call_body

from sidecar.simulator.cdr_template import build_cdr

TIMEOUT = (2.0, 15.0)
RATE_PER_MINUTE = Decimal("0.60")  # the one rate the scenarios seed (60/60 increments)


def expected_cost(billusec: int) -> Decimal:
    """Cost of a call at RATE_PER_MINUTE with 60 s increments, per the README's rules."""
    if billusec == 0:
        return Decimal("0.0000")
    billsec = math.ceil(billusec / 1_000_000)
    minutes = math.ceil(billsec / 60)
    return (RATE_PER_MINUTE * minutes).quantize(Decimal("0.0001"))


@dataclass
class Call:
    uuid: str
    authorized: bool = False
    reason: str = ""
    max_duration: int = 0
    billusec: int = 0
    delivered: bool = False
    spooled: bool = False

    @property
    def cost(self) -> Decimal:
        return expected_cost(self.billusec)


@dataclass
class Switch:
    urls: list[str]
    spool: Path
    caller: str
    callee: str = "51987654321"
    retries: int = 3
    delay: float = 0.5
    authorize_errors: int = 0
    cdr_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _url(self, n: int) -> str:
        with self._lock:
            return self.urls[n % len(self.urls)]

    def authorize(self, session: requests.Session, call: Call, n: int) -> None:
        body = call_body(call.uuid, self.caller, self.callee)
        try:
            resp = session.post(f"{self._url(n)}/v1/authorize", json=body, timeout=TIMEOUT)
            answer = resp.json() if resp.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            answer = {}
        if "authorized" not in answer:
            with self._lock:
                self.authorize_errors += 1
            call.reason = "error"
            return
        call.authorized = answer["authorized"] is True
        call.reason = str(answer.get("reason"))
        call.max_duration = int(answer.get("max_duration") or 0)

    def post_cdr(self, session: requests.Session, call: Call, xml: bytes, n: int) -> None:
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.delay)
            try:
                resp = session.post(
                    f"{self._url(n + attempt)}/freeswitch/cdr", params={"uuid": f"a_{call.uuid}"},
                    data=xml, headers={"Content-Type": "text/xml"}, timeout=TIMEOUT,
                )  # fmt: skip
            except requests.RequestException:
                continue
            if 200 <= resp.status_code < 300:
                call.delivered = True
                return
            with self._lock:
                self.cdr_failures += 1
        (self.spool / f"a_{call.uuid}.cdr.xml").write_bytes(xml)
        call.spooled = True

    def play(self, n: int, rng: random.Random, talk_wall: float) -> Call:
        call = Call(uuid=str(uuidlib.uuid4()))
        with requests.Session() as session:
            session.auth = FS_AUTH
            self.authorize(session, call, n)
            answered_us = time.time_ns() // 1000
            if call.authorized and call.max_duration > 1:
                # the switch hangs up at max_duration - 1 s at the latest
                call.billusec = rng.randint(500_000, (call.max_duration - 1) * 1_000_000)
                time.sleep(talk_wall)
                xml = build_cdr(call.uuid, self.caller, self.callee, answered_us, call.billusec)
            else:
                xml = build_cdr(
                    call.uuid, self.caller, self.callee, answered_us, 0,
                    hangup_cause="CALL_REJECTED",
                )  # fmt: skip
            self.post_cdr(session, call, xml, n)
        return call


def run_load(
    switch: Switch,
    calls: int,
    concurrency: int,
    seed: int,
    talk_wall: tuple[float, float] = (0.5, 2.0),
    on_call: Callable[[int], None] | None = None,
) -> list[Call]:
    """Play ``calls`` calls ``concurrency`` at a time; ``on_call(i)`` runs as call i starts."""

    def one(i: int) -> Call:
        if on_call is not None:
            on_call(i)
        rng = random.Random(f"{seed}:{i}")
        return switch.play(i, rng, rng.uniform(*talk_wall))

    with ThreadPoolExecutor(concurrency, thread_name_prefix="fs") as pool:
        return list(pool.map(one, range(calls)))
