"""Busy hour: authorizations and CDRs at the same paced rate, at the same time.

Two load-generator processes run side by side in open loop (request i due at i/rate),
so latency includes any queueing the server causes; the target is p99 of authorization.
With ``cdr_sidecar`` the CDRs go to a second sidecar (the split deployment: CDR intake on
its own port at a lower CPU priority, deploy/systemd/apolo-cdr.service).
"""

from __future__ import annotations

import threading
from typing import Any

from bench.authorize import Call, authorize_spec, record_answers
from bench.cdr_ingest import CdrBatch, Delivered
from bench.loadgen import Spec
from bench.procs import Server, load


def run(
    sidecar: Server,
    auth: tuple[str, str],
    calls: list[Call],
    cdrs: CdrBatch,
    rate: float,
    seconds: float,
    delivered: Delivered,
    cdr_sidecar: Server | None = None,
) -> dict[str, Any]:
    count = int(rate * seconds)
    calls, cdr_requests = calls[:count], cdrs.requests[:count]
    results: dict[str, dict[str, Any]] = {}

    def drive(name: str, spec: Spec) -> None:
        results[name] = load(spec)

    connections = max(16, int(rate * 0.05))  # enough for 50 ms of backlog before queueing
    auth_spec = authorize_spec(
        sidecar, auth, calls, concurrency=connections, rate=rate, max_seconds=seconds + 30
    )
    cdr_spec = Spec(
        "127.0.0.1",
        (cdr_sidecar or sidecar).port,
        cdr_requests,
        concurrency=connections,
        auth=auth,
        rate=rate,
        max_seconds=seconds + 30,
        keep_answers=True,
    )
    threads = [
        threading.Thread(target=drive, args=("authorize", auth_spec)),
        threading.Thread(target=drive, args=("cdr", cdr_spec)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["authorize"]["reasons"] = record_answers(calls, results["authorize"])
    delivered.add(cdrs, results["cdr"])
    return {"rate": rate, "seconds": seconds, **results}
