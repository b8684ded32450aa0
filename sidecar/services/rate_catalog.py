"""Per-process LPM indexes of the rate plans, kept in step with PostgreSQL.

Every worker holds the indexes of the plans it has used. A watcher thread LISTENs on
``apolo_rates`` (sent by the rates triggers) and also polls ``rate_plans.version`` every
``poll_seconds``, so a missed notification (reconnect, another sidecar host) still
reaches every worker within about a second. A changed plan is rebuilt off to the side
and swapped in whole; lookups keep using the old index until then.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from sidecar.rating import RateIndex
from sidecar.repo import rates as rates_repo

log = logging.getLogger(__name__)
Connect = Callable[[], psycopg.Connection[Any]]


class RateCatalog:
    def __init__(
        self,
        connect: Connect,
        poll_seconds: float = 0.5,
        on_accounts_changed: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        self._poll = poll_seconds
        # the watcher's connection also hears ``apolo_accounts`` for the account directory
        self._on_accounts_changed = on_accounts_changed or (lambda: None)
        self._listening = False
        self._indexes: dict[int, RateIndex] = {}
        self._lock = threading.Lock()
        self._pid = 0
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_refresh = 0.0

    def index(self, plan_id: int) -> RateIndex:
        self._ensure_watcher()
        found = self._indexes.get(plan_id)
        if found is not None:
            return found
        with self._lock:
            found = self._indexes.get(plan_id)
            if found is None:
                with self._connect() as conn:
                    found = self._build(conn, plan_id)
                self._indexes[plan_id] = found
        return found

    def refresh(self, conn: psycopg.Connection[Any]) -> list[int]:
        """Rebuild every held plan whose version moved; the ids rebuilt."""
        versions = rates_repo.plan_versions(conn)
        rebuilt = []
        for plan_id, index in list(self._indexes.items()):
            if versions.get(plan_id) != index.version:
                new_index = self._build(conn, plan_id)
                with self._lock:
                    self._indexes[plan_id] = new_index
                rebuilt.append(plan_id)
        self.last_refresh = time.monotonic()
        return rebuilt

    @property
    def listening(self) -> bool:
        """The watcher holds its LISTEN connection and looked at it moments ago: anything
        announced on ``apolo_rates`` / ``apolo_accounts`` reaches this process promptly."""
        return self._listening and time.monotonic() - self.last_refresh < 2 * self._poll + 1

    @property
    def healthy(self) -> bool:
        return self._watcher is None or time.monotonic() - self.last_refresh < 10 + self._poll

    def stop(self) -> None:
        self._stop.set()

    def _build(self, conn: psycopg.Connection[Any], plan_id: int) -> RateIndex:
        started = time.perf_counter()
        with rates_repo.plan_snapshot_text(conn, plan_id) as (version, rows):
            index = RateIndex.from_text_rows(rows, version)
        log.info(
            "rate plan %s v%s: %d rates indexed in %.2fs",
            plan_id,
            version,
            len(index),
            time.perf_counter() - started,
        )
        return index

    def _ensure_watcher(self) -> None:
        if self._pid == os.getpid() and self._watcher is not None:
            return
        with self._lock:
            if self._pid == os.getpid() and self._watcher is not None:
                return
            if self._pid != os.getpid():  # forked: the parent's indexes may be stale
                self._indexes.clear()
            self._pid = os.getpid()
            self.last_refresh = time.monotonic()
            self._watcher = threading.Thread(target=self._watch, name="apolo-rates", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.autocommit = True
                    conn.execute("LISTEN apolo_rates")
                    conn.execute("LISTEN apolo_accounts")
                    self._on_accounts_changed()  # whatever was announced while not listening
                    self.refresh(conn)
                    self._listening = True
                    backoff = 0.5
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=self._poll, stop_after=1):
                            if notify.channel == "apolo_accounts":
                                self._on_accounts_changed()
                        self.refresh(conn)
            except Exception as exc:  # keep watching whatever happens
                self._listening = False
                log.warning("rate watcher lost its connection (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
