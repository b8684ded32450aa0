"""Load generator, run as its own process: ``python -m bench.loadgen SPEC.pickle OUT.json``.

Plain asyncio over HTTP/1.1 keep-alive on loopback, one connection per call in flight.
Two modes:

* closed loop (``rate`` 0): ``concurrency`` connections each send the next request as soon
  as the previous answer arrives, so exactly that many calls are in flight: saturation.
* open loop (``rate`` > 0): request i is due at ``i / rate`` s; latency counts from the due
  time, not the send time, so a stalled server is not hidden (no coordinated omission).

Bounded: it stops after the last request or after ``max_seconds``, whichever comes first.
The spec (written by the bench, trusted) holds the pre-rendered requests; the output has
latency percentiles, throughput, status counts and, on request, every answer body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Spec:
    host: str
    port: int
    requests: list[tuple[str, str, bytes]]  # (path, content type, body), POSTed in order
    concurrency: int
    auth: tuple[str, str] | None = None
    rate: float = 0.0
    max_seconds: float = 60.0
    keep_answers: bool = False
    method: str = "POST"
    warmup: int = 0  # first N requests sent but left out of the figures


@dataclass
class _State:
    next_index: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    answers: dict[int, bytes] = field(default_factory=dict)
    status_of: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    reconnects: int = 0
    first_counted: float = 0.0
    last_done: float = 0.0


def _render(spec: Spec) -> list[bytes]:
    auth = ""
    if spec.auth:
        token = base64.b64encode(f"{spec.auth[0]}:{spec.auth[1]}".encode()).decode()
        auth = f"Authorization: Basic {token}\r\n"
    out = []
    for path, ctype, body in spec.requests:
        head = (
            f"{spec.method} {path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n{auth}"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _worker(spec: Spec, raws: list[bytes], st: _State, t0: float, stop: float) -> None:
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    try:
        while True:
            i = st.next_index
            if i >= len(raws) or time.perf_counter() > stop:
                return
            st.next_index = i + 1
            due = t0 + i / spec.rate if spec.rate else 0.0
            if due:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent = time.perf_counter()
            try:
                status, body = await _exchange(reader, writer, raws[i])
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                writer.close()
                st.reconnects += 1
                reader, writer = await asyncio.open_connection(spec.host, spec.port)
                if isinstance(exc, asyncio.IncompleteReadError) and not exc.partial:
                    try:  # the kept-alive socket was closed before any answer: resend once
                        status, body = await _exchange(reader, writer, raws[i])
                    except (asyncio.IncompleteReadError, ConnectionError) as again:
                        st.errors.append(f"{i}: {type(again).__name__}")
                        continue
                else:
                    st.errors.append(f"{i}: {type(exc).__name__}")
                    continue
            done = time.perf_counter()
            if i < spec.warmup:
                continue
            if not st.first_counted:
                st.first_counted = due or sent
            st.last_done = done
            st.latencies.append(done - (due or sent))
            st.statuses[status] = st.statuses.get(status, 0) + 1
            if spec.keep_answers:
                st.answers[i] = body
                st.status_of[i] = status
    finally:
        writer.close()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def summarize(latencies: list[float], elapsed: float) -> dict[str, float]:
    lat = sorted(latencies)
    return {
        "requests": len(lat),
        "seconds": round(elapsed, 3),
        "per_second": round(len(lat) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 3),
        "p95_ms": round(percentile(lat, 95) * 1000, 3),
        "p99_ms": round(percentile(lat, 99) * 1000, 3),
        "max_ms": round(lat[-1] * 1000, 3) if lat else 0.0,
    }


async def run(spec: Spec) -> dict[str, Any]:
    raws = _render(spec)
    st = _State()
    t0 = time.perf_counter() + 0.05
    stop = t0 + spec.max_seconds
    workers = [_worker(spec, raws, st, t0, stop) for _ in range(spec.concurrency)]
    results = await asyncio.gather(*workers, return_exceptions=True)
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    elapsed = st.last_done - st.first_counted if st.latencies else 0.0
    out: dict[str, Any] = summarize(st.latencies, elapsed)
    out.update(
        concurrency=spec.concurrency,
        rate=spec.rate,
        statuses={str(k): v for k, v in sorted(st.statuses.items())},
        errors=len(st.errors) + len(failures),
        error_samples=(st.errors + failures)[:5],
        reconnects=st.reconnects,
        unsent=max(0, len(raws) - st.next_index),
    )
    if spec.keep_answers:
        out["answers"] = {str(i): b.decode("utf-8", "replace") for i, b in st.answers.items()}
        out["status_of"] = {str(i): code for i, code in st.status_of.items()}
    return out


def main(argv: list[str]) -> int:
    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = Spec(**pickle.loads(spec_path.read_bytes()))
    result = asyncio.run(run(spec))
    out_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
