"""Per-worker cache of who is calling: account number or ANI -> id, plan, status, call cap.

Authorization then needs no lookup before ``apolo_reserve()``: one database round trip.
Triggers (sql/006_account_notify.sql) send ``apolo_accounts`` whenever one of these facts
changes; the rate watcher's connection listens and drops the whole cache. The cache is used
only while that watcher is demonstrably listening; otherwise every lookup goes to the
database. The balance is never cached: ``apolo_reserve()`` reads it under the row lock, and
re-checks the status there too.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from sidecar.repo import accounts as accounts_repo

MAX_ENTRIES = 200_000


class AccountDirectory:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._max = max_entries

    def find_for_call(
        self, conn: psycopg.Connection[Any], account: str | None, caller: str, *, trusted: bool
    ) -> dict[str, Any] | None:
        """As ``accounts_repo.find_for_call``; from the cache when ``trusted`` (the watcher
        is listening). Unknown callers are never cached."""
        key = ("number", account) if account else ("ani", caller)
        if trusted:
            hit = self._entries.get(key)
            if hit is not None:
                return hit
        generation = self._generation
        row = accounts_repo.find_for_call(conn, account, caller)
        if row is not None and trusted:
            with self._lock:
                if generation == self._generation:  # no change was announced meanwhile
                    if len(self._entries) >= self._max:
                        self._entries.clear()
                    self._entries[key] = dict(row)
        return row

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
