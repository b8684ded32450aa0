"""CDR ingest: sustained mod_xml_cdr posts per second, then exact consistency counts.

The documents are the simulator's: the real FreeSWITCH 1.10.12 capture, re-stamped per
call by ``sidecar.simulator.cdr_template.build_cdr``. They are posted as FreeSWITCH
posts them (``text/xml``, ``?uuid=a_<uuid>``, basic auth); a share is posted twice, as
FreeSWITCH does when an answer is lost. Denied calls get the unanswered CDR a rejected
call writes. The floor is the bare WSGI app receiving the same bodies.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from bench.authorize import Call
from bench.data import PBX_IDENTITY
from bench.loadgen import Spec
from bench.procs import Server, load
from sidecar.simulator.cdr_template import build_cdr

REJECT_CAUSE = "CALL_REJECTED"


@dataclass
class CdrBatch:
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    # per request: the call's uuid and whether it holds a reservation (so must be charged)
    meta: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def unique(self) -> int:
        return len({uuid for uuid, _ in self.meta})


@dataclass
class Delivered:
    """The CDRs the sidecar answered 2xx for: each must be stored once, charged once."""

    uuids: set[str] = field(default_factory=set)
    charged_uuids: set[str] = field(default_factory=set)

    def add(self, batch: CdrBatch, result: dict[str, Any]) -> None:
        result.pop("answers", None)
        for key, status in result.pop("status_of", {}).items():
            if 200 <= status < 300:
                uuid, charged = batch.meta[int(key)]
                self.uuids.add(uuid)
                if charged:
                    self.charged_uuids.add(uuid)


def build_batch(calls: list[Call], duplicate_ratio: float, seed: int) -> CdrBatch:
    rng = random.Random(f"cdrs:{seed}")
    batch = CdrBatch()
    answer_us = (int(time.time()) - 3600) * 1_000_000
    repeats = []
    for call in calls:
        if call.authorized:
            billusec = rng.randint(1_000_000, 180_000_000)
            body = build_cdr(call.uuid, call.caller, call.callee, answer_us, billusec, PBX_IDENTITY)
        else:
            body = build_cdr(
                call.uuid,
                call.caller,
                call.callee,
                answer_us,
                0,
                PBX_IDENTITY,
                hangup_cause=REJECT_CAUSE,
            )
        request = (f"/freeswitch/cdr?uuid=a_{call.uuid}", "text/xml", body)
        batch.requests.append(request)
        batch.meta.append((call.uuid, call.authorized))
        if rng.random() < duplicate_ratio:
            repeats.append((request, (call.uuid, call.authorized)))
    for request, meta in repeats:  # the repeats come later, as retries do
        batch.requests.append(request)
        batch.meta.append(meta)
    return batch


def saturation(
    sidecar: Server,
    bare: Server,
    auth: tuple[str, str],
    batch: CdrBatch,
    concurrency: int,
    max_seconds: float,
    delivered: Delivered,
) -> dict[str, Any]:
    result = load(
        Spec(
            "127.0.0.1",
            sidecar.port,
            batch.requests,
            concurrency=concurrency,
            auth=auth,
            max_seconds=max_seconds,
            keep_answers=True,
        )
    )
    delivered.add(batch, result)
    floor = load(
        Spec(
            "127.0.0.1", bare.port, batch.requests, concurrency=concurrency, max_seconds=max_seconds
        )
    )
    result["floor_http"] = {k: floor[k] for k in ("per_second", "p50_ms", "p99_ms", "errors")}
    result["ratio_throughput_to_floor"] = round(result["per_second"] / floor["per_second"], 3)
    result["duplicates_posted"] = len(batch.requests) - batch.unique
    result["cdr_bytes_avg"] = round(sum(len(r[2]) for r in batch.requests) / len(batch.requests))
    return result
