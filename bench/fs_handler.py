"""The mod_python3 path: ``fs_scripts/apolo_fs.authorize_session`` on threads, one per call.

Run as its own process (``python -m bench.fs_handler SPEC.json OUT.json``), as FreeSWITCH
runs the hook: one embedded interpreter, a thread per call in the dialplan, the cached
helper's keep-alive pool shared by all. ``concurrency`` threads each handle calls back to
back, so that many are in flight; latency is the whole handler call (variables read,
HTTP exchange, decision, variables set). The session is the smallest stand-in that
answers what the hook asks of a channel.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.data import PBX_IDENTITY
from bench.loadgen import summarize
from bench.procs import ROOT


class _Session:
    def __init__(self, uuid: str, caller: str, callee: str) -> None:
        self.vars = {"uuid": uuid, "caller_id_number": caller, "destination_number": callee,
                     **PBX_IDENTITY}  # fmt: skip

    def getVariable(self, name: str) -> str | None:
        return self.vars.get(name)

    def setVariable(self, name: str, value: str) -> None:
        self.vars[name] = value

    def get_uuid(self) -> str:
        return self.vars["uuid"]

    def answered(self) -> bool:
        return False

    def execute(self, app: str, data: str = "") -> None:
        self.vars[f"executed_{app}"] = data

    def hangup(self, cause: str = "") -> None:
        self.vars["hangup"] = cause


def run(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "fs_scripts"))
    apolo_fs = importlib.import_module("apolo_fs")
    apolo_fs.configure(
        apolo_fs.Settings(url=spec["url"], user=spec["user"], password=spec["password"])
    )
    calls: list[list[str]] = spec["calls"]
    latencies: list[float] = []
    results: dict[str, int] = {}
    lock = threading.Lock()
    cursor = iter(range(len(calls)))
    stop = time.perf_counter() + spec["max_seconds"]

    def worker() -> None:
        while time.perf_counter() < stop:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            session = _Session(*calls[i])
            started = time.perf_counter()
            apolo_fs.authorize_session(session, "")
            took = time.perf_counter() - started
            key = f"{session.vars.get('apolo_result')}:{session.vars.get('apolo_reason')}"
            with lock:
                latencies.append(took)
                results[key] = results.get(key, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(spec["concurrency"])]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: dict[str, Any] = summarize(latencies, time.perf_counter() - started)
    out.update(concurrency=spec["concurrency"], results=results)
    return out


if __name__ == "__main__":
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    result = run(json.loads(spec_path.read_text(encoding="utf-8")))
    out_path.write_text(json.dumps(result), encoding="utf-8")
