"""Group commit for CDR intake: the CDRs that arrive while a batch settles go in the next.

Each worker process runs one settler thread with a connection of its own. A request parses
its CDR, hands it over and waits; the settler takes everything waiting (up to
``max_batch``), ingests it with ``ingest_many`` in one transaction, commits, and only then
answers the waiting requests. Under load one commit (one WAL flush) and one
``apolo_settle_cdrs()`` serve many CDRs; with no load a CDR waits for nothing but its own
commit. A 2xx still leaves only after the commit that stored its CDR, and ``on_commit``
(the live call table) runs after that commit, once per batch. When a batch fails its
CDRs are tried again one by one, each in its own transaction, so one bad CDR fails alone
(its request answers an error and FreeSWITCH retries it) and never holds back the others.
The thread stops after ``idle_seconds`` without work and closes its connection.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import psycopg

from sidecar.freeswitch.xml_cdr import CdrRecord
from sidecar.services.cdr_ingest import IngestResult, ingest_many
from sidecar.services.rate_catalog import RateCatalog

log = logging.getLogger(__name__)
Connect = Callable[[], psycopg.Connection[Any]]


@dataclass
class _Arrival:
    record: CdrRecord
    raw_xml: str | None
    answer: Future[IngestResult] = field(default_factory=Future)


class CdrBatcher:
    def __init__(
        self,
        connect: Connect,
        catalog: RateCatalog,
        on_commit: Callable[[list[IngestResult]], None] = lambda results: None,
        max_batch: int = 200,
        idle_seconds: float = 10.0,
        wait_seconds: float = 60.0,
    ) -> None:
        self._connect = connect
        self._catalog = catalog
        self._on_commit = on_commit
        self._max = max_batch
        self._idle = idle_seconds
        self._wait = wait_seconds
        self._queue: queue.Queue[_Arrival | None] = queue.Queue()  # None: stop
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ingest(self, record: CdrRecord, raw_xml: str | None) -> IngestResult:
        """Store and settle one FreeSWITCH CDR; returns once its batch has committed, raises
        what made it fail (a ``psycopg.OperationalError`` when the database is down)."""
        arrival = _Arrival(record, raw_xml)
        with self._lock:  # with the settler's exit check: never queued for a leaving thread
            self._adopt_process()
            self._queue.put(arrival)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="apolo-cdrs", daemon=True)
                self._thread.start()
        try:
            return arrival.answer.result(self._wait)
        except TimeoutError:  # the database hangs: FreeSWITCH retries (charged once anyway)
            raise psycopg.OperationalError("CDR not settled in time") from None

    def stop(self) -> None:
        """Let the settler finish what is queued, close its connection and end."""
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                self._queue.put(None)

    def _adopt_process(self) -> None:
        """In a forked child, the parent's queue and thread are not this process's."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._queue = queue.Queue()
            self._thread = None

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        try:
            while True:
                try:
                    first = self._queue.get(timeout=self._idle)
                except queue.Empty:
                    first = None
                if first is None:
                    with self._lock:  # stop, unless a request queued something meanwhile
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                batch = [first]
                while len(batch) < self._max:
                    try:
                        arrival = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if arrival is not None:
                        batch.append(arrival)
                conn = self._settle_all(conn, batch)
        finally:
            if conn is not None:
                conn.close()

    def _settle_all(
        self, conn: psycopg.Connection[Any] | None, batch: list[_Arrival]
    ) -> psycopg.Connection[Any] | None:
        conn, failure = self._settle(conn, batch)
        if failure is None:
            return conn
        if len(batch) == 1:
            batch[0].answer.set_exception(failure)
            return conn
        log.warning("a batch of %d CDRs failed (%s); settling them one by one", len(batch), failure)
        for arrival in batch:
            conn, failure = self._settle(conn, [arrival])
            if failure is not None:
                arrival.answer.set_exception(failure)
        return conn

    def _settle(
        self, conn: psycopg.Connection[Any] | None, batch: list[_Arrival]
    ) -> tuple[psycopg.Connection[Any] | None, BaseException | None]:
        """(the connection to keep using, or None when it broke; the failure, if any)."""
        try:
            if conn is None or conn.closed:
                conn = self._connect()
            results = ingest_many(conn, self._catalog, [(a.record, a.raw_xml) for a in batch])
            conn.commit()
        except Exception as exc:  # every failure goes back to its requests
            if conn is not None:
                try:
                    conn.rollback()
                except Exception:  # broken: drop it, the next batch reconnects
                    conn.close()
                    conn = None
            return conn, exc
        try:
            self._on_commit(results)  # Redis side effects: after the commit, never before
        except Exception:
            log.exception("after-commit side effect failed (PostgreSQL stays the record)")
        for arrival, result in zip(batch, results, strict=True):
            arrival.answer.set_result(result)
        return conn, None
