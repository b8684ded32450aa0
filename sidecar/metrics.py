"""Prometheus counters of what the sidecar decided, for ``GET /metrics``.

gunicorn runs several worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (``apolo
serve`` sets it to a fresh directory), every worker writes its counters there and a scrape
of any worker adds them all up. Without it (tests, a single process) the counters live in
this process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

AUTHORIZATIONS = Counter(
    "apolo_authorizations_total",
    "Authorization answers, by result and reason",
    ["result", "reason"],
)
CDRS = Counter(
    "apolo_cdrs_total",
    "CDRs received, by billing status (duplicates counted apart)",
    ["status", "duplicate"],
)
ERRORS = Counter(
    "apolo_errors_total",
    "Requests refused for lack of a dependency or by an internal error, by error code",
    ["code"],
)

__all__ = ["AUTHORIZATIONS", "CDRS", "CONTENT_TYPE_LATEST", "ERRORS", "exposition"]


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
